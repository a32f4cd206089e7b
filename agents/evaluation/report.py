"""The gap report: per-instance objectives of several policies on the same instances, their gaps to the
optimum and to the best heuristic; a table (markdown, CSV) and a plot.

``gap = objective / reference - 1``. Against the optimum it is bracketed: ``gap_low`` uses the best schedule
the solver found (the true gap is at least this), ``gap_high`` uses the solver's lower bound (the true gap is
at most this); they coincide when the solver proved optimality.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .optimum_cache import OptimumRecord
from .rollouts import objective_value_of

REPORTED_METRICS = ("mean_ttlt", "total_gpu_time")
"""Metrics averaged over the instances in the summary table besides the objective."""


@dataclass
class GapReport:
    """Per-instance objectives of several policies on the same seeded instances, and their gaps.

    ``objectives[name][i]`` is policy ``name``'s objective on instance ``seeds[i]``; ``heuristics`` names the
    policies that count as heuristics; ``optimum[i]`` is the solver's record (or ``None`` when not solved).
    """

    objective: str
    seeds: list[int]
    num_requests: list[int]
    objectives: dict[str, np.ndarray] = field(default_factory=dict)
    heuristics: list[str] = field(default_factory=list)
    optimum: list[OptimumRecord] | None = None
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def add(self, name: str, values: Sequence[float], heuristic: bool = False,
            metrics: Mapping[str, Sequence[float]] | None = None) -> None:
        """Record policy ``name``'s objective per instance (and optionally other per-instance metrics)."""
        values = np.asarray(values, dtype=float)
        if values.shape != (len(self.seeds),):
            raise ValueError(f"{name}: {values.shape[0]} objectives for {len(self.seeds)} instances")
        self.objectives[name] = values
        self.metrics[name] = {key: np.asarray(v, dtype=float) for key, v in (metrics or {}).items()}
        if heuristic and name not in self.heuristics:
            self.heuristics.append(name)

    def add_summaries(self, name: str, summaries: Sequence[Mapping[str, float]], heuristic: bool = False) -> None:
        """Record a policy from its per-instance metric summaries (objective plus :data:`REPORTED_METRICS`)."""
        self.add(name, [objective_value_of(summary, self.objective) for summary in summaries], heuristic,
                 {key: [summary[key] for summary in summaries] for key in REPORTED_METRICS})

    @property
    def has_optimum(self) -> bool:
        return self.optimum is not None

    def optimum_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(best objective found, solver lower bound) per instance."""
        if self.optimum is None:
            raise ValueError("no optimum in this report")
        return (np.array([r.objective for r in self.optimum]), np.array([r.best_bound for r in self.optimum]))

    def gap_to_optimum(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(gap_low, gap_high)``: gap to the best schedule found and to the solver's bound."""
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

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per policy, sorted by mean gap (to the optimum when known)."""
        rows = []
        for name, values in self.objectives.items():
            row: dict[str, Any] = {"policy": name, "kind": "heuristic" if name in self.heuristics else "agent",
                                   f"mean_{self.objective}": float(values.mean())}
            row.update({key: float(v.mean()) for key, v in self.metrics.get(name, {}).items()})
            if self.has_optimum:
                low, high = self.gap_to_optimum(name)
                bounded = np.isfinite(high)
                row.update(mean_gap=float(low.mean()), worst_gap=float(low.max()),
                           mean_gap_to_bound=float(high[bounded].mean()) if bounded.any() else math.inf,
                           bounded_instances=int(bounded.sum()))
            if self.heuristics:
                vs = self.gap_to_best_heuristic(name)
                row.update(mean_gap_vs_best_heuristic=float(vs.mean()), beats_best_heuristic=int((vs < -1e-9).sum()),
                           ties_best_heuristic=int((np.abs(vs) <= 1e-9).sum()))
            rows.append(row)
        key = "mean_gap" if self.has_optimum else f"mean_{self.objective}"
        return sorted(rows, key=lambda r: r[key])

    def instance_rows(self) -> list[dict[str, Any]]:
        """One row per instance: seed, size, optimum record, each policy's objective and gap."""
        rows = []
        for i, seed in enumerate(self.seeds):
            row: dict[str, Any] = {"seed": seed, "num_requests": self.num_requests[i]}
            if self.optimum is not None:
                record = self.optimum[i]
                row.update(optimum=record.objective, bound=record.best_bound, status=record.status,
                           proven=record.proven, solve_time=record.wall_time)
            for name, values in self.objectives.items():
                row[name] = float(values[i])
                if self.optimum is not None:
                    row[f"gap_{name}"] = float(values[i] / self.optimum[i].objective - 1.0)
            rows.append(row)
        return rows

    def proven_count(self) -> int:
        return sum(r.proven for r in self.optimum) if self.optimum is not None else 0

    def to_markdown(self) -> str:
        """The summary table (gaps in percent)."""
        rows = self.summary_rows()
        columns = [c for c in rows[0] if c != "kind"]
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows:
            lines.append("| " + " | ".join(_format_cell(c, row[c]) for c in columns) + " |")
        what = "sum of TTLT" if self.objective == "latency" else "total GPU time"
        notes = [f"{len(self.seeds)} instances, objective {self.objective!r} (mean_{self.objective}: the {what} of an "
                 f"instance in seconds, averaged over instances; so are mean_ttlt and total_gpu_time)."]
        if self.optimum is not None:
            notes.append(f"Optimum proven on {self.proven_count()}/{len(self.seeds)}; the others are bracketed: "
                         f"mean_gap uses the best schedule the solver found (the true gap is at least this), "
                         f"mean_gap_to_bound its lower bound (at most this; averaged over the bounded_instances "
                         f"where the bound is positive).")
        if self.heuristics:
            notes.append(f"Best heuristic: {self.best_heuristic()}; mean_gap_vs_best_heuristic compares with "
                         f"the best heuristic on each instance.")
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
        """Per-instance gaps (to the optimum when known, else to the best heuristic) per policy."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [row["policy"] for row in self.summary_rows()]
        if self.has_optimum:
            gaps = [100 * self.gap_to_optimum(name)[0] for name in names]
            label = "gap to the optimum (%)"
        else:
            gaps = [100 * self.gap_to_best_heuristic(name) for name in names]
            label = "gap to the best heuristic per instance (%)"
        fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 4.5))
        ax.boxplot(gaps, showfliers=True)
        ax.scatter(range(1, len(names) + 1), [g.mean() for g in gaps], marker="D", color="tab:red", zorder=3,
                   label="mean")
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.set_title(f"{len(self.seeds)} held-out instances, objective {self.objective}")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _format_cell(column: str, value: Any) -> str:
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
