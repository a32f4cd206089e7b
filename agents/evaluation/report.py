"""The gap report: per-instance objectives of several policies on the same instances, their gaps to the
optimum and to the best heuristic; a table (markdown, CSV) and a plot.

``gap = objective / reference - 1``. Against the optimum the report always gives both ends of the bracket:
``gap_to_best_known`` uses the best schedule known for the instance (the solver's, or a policy's where one beat
the solver within its time limit), so the true gap is at least this and never negative; ``gap_to_bound`` uses
the solver's lower bound (the true gap is at most this); on proven instances both equal the true gap
(``gap_proven``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from infermax_env.metrics import Objective, objective_value

from .optimum_cache import OptimumRecord

REPORTED_METRICS = ("sum_ttlt", "mean_ttlt", "total_gpu_time")
"""Per-instance metric summaries averaged over the instances in the summary table (columns ``avg_<name>_s``):
the objective is ``sum_ttlt`` (latency) or ``total_gpu_time`` (gpu_time)."""

TIE = 1e-9
"""Relative differences at or below this count as ties."""


@dataclass
class GapReport:
    """Per-instance objectives of several policies on the same seeded instances, and their gaps.

    ``objectives[name][i]`` is policy ``name``'s objective on instance ``seeds[i]``; ``heuristics`` names the
    policies that count as heuristics; ``oracle`` the policies that read true output lengths; ``optimum[i]``
    is the solver's record (or ``None`` when not solved) and ``solver`` describes the solver settings;
    ``notes`` are printed under the table.
    """

    objective: str
    seeds: list[int]
    num_requests: list[int]
    objectives: dict[str, np.ndarray] = field(default_factory=dict)
    heuristics: list[str] = field(default_factory=list)
    optimum: list[OptimumRecord] | None = None
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    oracle: set[str] = field(default_factory=set)
    solver: str = ""
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, values: Sequence[float], heuristic: bool = False,
            metrics: Mapping[str, Sequence[float]] | None = None, oracle: bool = False) -> None:
        """Record policy ``name``'s objective per instance (and optionally other per-instance metrics);
        ``oracle``: the policy reads true output lengths."""
        values = np.asarray(values, dtype=float)
        if values.shape != (len(self.seeds),):
            raise ValueError(f"{name}: {values.shape[0]} objectives for {len(self.seeds)} instances")
        self.objectives[name] = values
        self.metrics[name] = {key: np.asarray(v, dtype=float) for key, v in (metrics or {}).items()}
        if heuristic and name not in self.heuristics:
            self.heuristics.append(name)
        if oracle:
            self.oracle.add(name)
        else:
            self.oracle.discard(name)

    def add_summaries(self, name: str, summaries: Sequence[Mapping[str, float]], heuristic: bool = False,
                      oracle: bool = False) -> None:
        """Record a policy from its per-instance metric summaries (objective plus :data:`REPORTED_METRICS`)."""
        self.add(name, [objective_value(summary, self.objective) for summary in summaries], heuristic,
                 {key: [summary[key] for summary in summaries] for key in REPORTED_METRICS}, oracle)

    @property
    def has_optimum(self) -> bool:
        return self.optimum is not None

    def optimum_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(best known objective, solver lower bound) per instance: the best known is the solver's schedule or
        any reported policy's, whichever is lower (each is a feasible schedule, so the optimum is at most it)."""
        if self.optimum is None:
            raise ValueError("no optimum in this report")
        best = np.min(np.stack([self.solver_values(), *self.objectives.values()]), axis=0)
        return best, np.array([r.best_bound for r in self.optimum])

    def solver_values(self) -> np.ndarray:
        """The objective of the solver's best schedule per instance."""
        if self.optimum is None:
            raise ValueError("no optimum in this report")
        return np.array([r.objective for r in self.optimum])

    def gap_to_optimum(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(gap_low, gap_high)``: gap to the best known schedule and to the solver's bound."""
        best, bound = self.optimum_values()
        values = self.objectives[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            high = np.where(bound > 0, values / bound - 1.0, np.inf)  # a zero bound brackets nothing
        return values / best - 1.0, high

    def best_heuristic_per_instance(self) -> np.ndarray:
        if not self.heuristics:
            raise ValueError("no heuristic in this report")
        return np.min(np.stack([self.objectives[h] for h in self.heuristics]), axis=0)

    def best_heuristic(self) -> str:
        """The heuristic with the lowest mean objective ratio to the reference (optimum, else per-instance best)."""
        if not self.heuristics:
            raise ValueError("no heuristic in this report")
        reference = self.optimum_values()[0] if self.has_optimum else self.best_heuristic_per_instance()
        return min(self.heuristics, key=lambda h: float(np.mean(self.objectives[h] / reference)))

    def gap_to_best_heuristic(self, name: str) -> np.ndarray:
        """Gap to the best heuristic *on each instance* (negative: better than every heuristic)."""
        return self.objectives[name] / self.best_heuristic_per_instance() - 1.0

    def proven_mask(self) -> np.ndarray:
        """Per instance: whether the solver proved its schedule optimal."""
        return np.array([r.proven for r in self.optimum] if self.optimum is not None else [], dtype=bool)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per policy, sorted by mean gap to the best known schedule (when solved), else by objective.

        Columns: ``oracle`` (reads true output lengths), ``avg_<metric>_s`` (each per-instance metric averaged
        over instances), and with the optimum ``gap_to_best_known`` / ``gap_to_bound`` (mean of each end of
        the bracket), ``gap_proven`` (mean over the proven instances), ``worst_gap_to_best_known``,
        ``beats_solver`` (instances where the policy beat the solver's schedule: the solver stopped short
        there, and the policy's schedule is the best known); with heuristics ``gap_vs_best_heuristic`` (to the best heuristic on each instance),
        ``beats_best_heuristic`` and ``ties_best_heuristic`` (instance counts).
        """
        rows = []
        for name, values in self.objectives.items():
            row: dict[str, Any] = {"policy": name, "kind": "heuristic" if name in self.heuristics else "agent",
                                   "oracle": "yes" if name in self.oracle else "no"}
            metrics = self.metrics.get(name) or {Objective.parse(self.objective).summary_key: values}
            row.update({f"avg_{key}_s": float(v.mean()) for key, v in metrics.items()})
            if self.has_optimum:
                low, high = self.gap_to_optimum(name)
                bounded, proven = np.isfinite(high), self.proven_mask()
                row.update(gap_to_best_known=float(low.mean()),
                           gap_to_bound=float(high[bounded].mean()) if bounded.any() else math.inf,
                           gap_proven=float(low[proven].mean()) if proven.any() else math.nan,
                           worst_gap_to_best_known=float(low.max()),
                           beats_solver=int((values < self.solver_values() * (1 - TIE)).sum()))
            if self.heuristics:
                vs = self.gap_to_best_heuristic(name)
                row.update(gap_vs_best_heuristic=float(vs.mean()), beats_best_heuristic=int((vs < -TIE).sum()),
                           ties_best_heuristic=int((np.abs(vs) <= TIE).sum()))
            rows.append(row)
        key = "gap_to_best_known" if self.has_optimum else f"avg_{Objective.parse(self.objective).summary_key}_s"
        return sorted(rows, key=lambda r: r[key])

    def instance_rows(self) -> list[dict[str, Any]]:
        """One row per instance: seed, size, the solver's record (best known, bound, proven, where the best
        schedule came from), each policy's objective and both ends of its gap."""
        rows = []
        for i, seed in enumerate(self.seeds):
            row: dict[str, Any] = {"seed": seed, "num_requests": self.num_requests[i]}
            if self.optimum is not None:
                record = self.optimum[i]
                row.update(best_known=float(self.optimum_values()[0][i]), solver=record.objective,
                           bound=record.best_bound, status=record.status, proven=record.proven,
                           solver_source=record.source, solve_time_s=record.wall_time)
            for name, values in self.objectives.items():
                row[name] = float(values[i])
                if self.optimum is not None:
                    low, high = self.gap_to_optimum(name)
                    row[f"gap_to_best_known_{name}"] = float(low[i])
                    row[f"gap_to_bound_{name}"] = float(high[i])
            rows.append(row)
        return rows

    def proven_count(self) -> int:
        return int(self.proven_mask().sum())

    def to_markdown(self) -> str:
        """The summary table (gaps in percent) and the notes that say what its columns mean."""
        rows = self.summary_rows()
        columns = [c for c in rows[0] if c != "kind"]
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows:
            lines.append("| " + " | ".join(_format_cell(c, row[c]) for c in columns) + " |")
        key = Objective.parse(self.objective).summary_key
        notes = [f"{len(self.seeds)} instances, objective {self.objective!r} = {key} (per instance, seconds); "
                 f"avg_<metric>_s is that per-instance metric averaged over the instances (avg_sum_ttlt_s: the sum of "
                 f"TTLT of an instance, averaged; avg_mean_ttlt_s: its mean TTLT, averaged). oracle = yes: the "
                 f"policy reads true output lengths (a real scheduler cannot)."]
        if self.optimum is not None:
            proven = self.proven_count()
            settings = self.solver or "solver settings not given"
            notes.append(f"Optimum ({settings}): proven on {proven}/{len(self.seeds)} "
                         f"instances; elsewhere it is bracketed: gap_to_best_known uses the best schedule the solver "
                         f"found or, where a policy beat it (beats_solver counts those instances: the solver "
                         f"stopped short there), that policy's (the true gap is at least this); gap_to_bound uses the "
                         f"solver's lower bound (the true gap is at most this; mean over instances with a positive "
                         f"bound); gap_proven is the true gap, averaged over the {proven} proven instances. The "
                         f"optimum knows every output length (clairvoyant).")
            sources = {}
            for record in self.optimum:
                if record.source and not record.source.startswith("solver"):
                    sources[record.source] = sources.get(record.source, 0) + 1
            if sources:
                notes.append(f"On some instances the best known schedule is a heuristic's own schedule (the solver's "
                             f"starting point, not improved within its time limit): "
                             f"{', '.join(f'{k} on {v}' for k, v in sorted(sources.items()))}; those heuristics show "
                             f"a 0% gap to best known there.")
        if self.heuristics:
            notes.append(f"Best heuristic: {self.best_heuristic()}; gap_vs_best_heuristic compares with the best "
                         f"heuristic on each instance.")
        notes.extend(self.notes)
        return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"

    def write(self, directory: str | Path, stem: str = "gap") -> dict[str, Path]:
        """Write ``<stem>_table.csv``, ``<stem>_table.md``, ``<stem>_instances.csv`` and ``<stem>_plot.png``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"table_csv": directory / f"{stem}_table.csv", "table_md": directory / f"{stem}_table.md",
                 "instances_csv": directory / f"{stem}_instances.csv", "plot": directory / f"{stem}_plot.png"}
        _write_csv(paths["table_csv"], self.summary_rows())
        paths["table_md"].write_text(self.to_markdown())
        _write_csv(paths["instances_csv"], self.instance_rows())
        self.plot(paths["plot"])
        return paths

    def plot(self, path: str | Path) -> None:
        """Per-instance gaps per policy: with the optimum, both ends of the bracket side by side (gap to the
        solver's best known schedule, gap to its bound) with proven instances marked; else the gap to the
        best heuristic on each instance."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [row["policy"] for row in self.summary_rows()]
        labels = [name + (" [oracle]" if name in self.oracle else "") for name in names]
        x = np.arange(1, len(names) + 1, dtype=float)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 5.5))
        if self.has_optimum:
            proven = self.proven_mask()
            lows, highs = zip(*(self.gap_to_optimum(name) for name in names))
            highs = [h[np.isfinite(h)] for h in highs]
            for offset, gaps, colour, label in ((-0.2, lows, "tab:blue", "gap to best known (true gap >= this)"),
                                                (0.2, highs, "tab:orange", "gap to solver bound (true gap <= this)")):
                parts = ax.boxplot([100 * g for g in gaps], positions=x + offset, widths=0.35, showfliers=False,
                                   patch_artist=True)
                for box in parts["boxes"]:
                    box.set(facecolor=colour, alpha=0.35)
                ax.plot([], [], color=colour, linewidth=6, alpha=0.35, label=label)
            for i, low in enumerate(lows):
                ax.scatter(np.full(int(proven.sum()), x[i] - 0.2), 100 * low[proven], marker="*", color="black",
                           s=18, zorder=3, label="proven instance" if i == 0 and proven.any() else None)
            ylabel = "gap to the optimum, bracketed (%)"
            title = (f"{len(self.seeds)} held-out instances, objective {self.objective}; optimum proven on "
                     f"{int(proven.sum())}/{len(self.seeds)}\n{self.solver}")
        else:
            gaps = [100 * self.gap_to_best_heuristic(name) for name in names]
            ax.boxplot(gaps, positions=x, showfliers=True)
            ax.scatter(x, [g.mean() for g in gaps], marker="D", color="tab:red", zorder=3, label="mean")
            ylabel = "gap to the best heuristic per instance (%)"
            title = f"{len(self.seeds)} held-out instances, objective {self.objective}"
        ax.set_xticks(x, labels, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _format_cell(column: str, value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and "gap" in column:
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
