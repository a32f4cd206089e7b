"""Evaluate any policy on a fixed, seeded set of held-out workloads: objective, gap to the optimum, gap to the
best heuristic; a table and a plot.

Seeds. Evaluation instance ``i`` is drawn with seed ``EVAL_SEED_OFFSET + i`` (10,000,000 + i). Training
resets draw their seeds from :func:`training_seeds`, a ``numpy.random.SeedSequence`` stream mapped into
``[0, EVAL_SEED_OFFSET)``, so no training instance is an evaluation instance (:class:`TrainingSeedWrapper`
applies it to a training env).

Policies. :func:`as_action_fn` accepts an SB3 model (MaskablePPO gets ``env.action_masks()``), anything with
an SB3-style ``predict`` (e.g. ``baselines.policy.SchedulerPolicy``), or a plain callable ``obs -> action``.
Heuristic baselines also run directly on the simulator (:func:`run_scheduler`), which is how the table gets
them; the optimum comes from the CP-SAT solver through :class:`OptimumCache`.

Gaps. ``gap = objective / reference - 1``. Against the optimum it is bracketed: ``gap_low`` uses the best
schedule the solver found (the true gap is at least this), ``gap_high`` uses the solver's lower bound (the true
gap is at most this); they coincide when the solver proved optimality.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import gymnasium as gym
import numpy as np

from infermax_env.metrics import objective_value
from infermax_env.simulator import Simulator
from infermax_env.workload import Workload

REPORTED_METRICS = ("mean_ttlt", "total_gpu_time")
"""Metrics averaged over the instances in the summary table besides the objective."""

EVAL_SEED_OFFSET = 10_000_000
"""Evaluation instance ``i`` uses seed ``EVAL_SEED_OFFSET + i``; training seeds stay below it."""

ActionFn = Callable[[Any, gym.Env], Any]
"""``(observation, env) -> action``: one decision of a policy in ``env``."""


# ---- seeds -------------------------------------------------------------------------------------------
def evaluation_seeds(num_instances: int, offset: int = EVAL_SEED_OFFSET) -> list[int]:
    """Seeds of the held-out evaluation instances: ``offset, offset + 1, ...``."""
    if num_instances < 1:
        raise ValueError(f"num_instances must be >= 1, got {num_instances}")
    if offset < EVAL_SEED_OFFSET:
        raise ValueError(f"evaluation seeds must start at or above {EVAL_SEED_OFFSET} (disjoint from training), "
                         f"got offset {offset}")
    return [offset + i for i in range(num_instances)]


def training_seeds(seed: int) -> Iterator[int]:
    """An endless stream of training instance seeds in ``[0, EVAL_SEED_OFFSET)``, reproducible from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    while True:
        yield from rng.integers(0, EVAL_SEED_OFFSET, size=1024).tolist()


class TrainingSeedWrapper(gym.Wrapper):
    """Resets the wrapped env with seeds from :func:`training_seeds` so training never sees an evaluation
    instance. An explicit ``reset(seed=...)`` still wins (it must be below ``EVAL_SEED_OFFSET``)."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._seeds = training_seeds(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and seed >= EVAL_SEED_OFFSET:
            raise ValueError(f"training seed {seed} collides with the evaluation range (>= {EVAL_SEED_OFFSET})")
        return self.env.reset(seed=next(self._seeds) if seed is None else seed, options=options)


# ---- running policies --------------------------------------------------------------------------------
def as_action_fn(policy: Any, deterministic: bool = True) -> ActionFn:
    """Adapt an SB3 model, an object with SB3-style ``predict``, or a callable ``obs -> action``."""
    from sb3_contrib import MaskablePPO

    if isinstance(policy, MaskablePPO):
        def masked(obs: Any, env: gym.Env) -> Any:
            return policy.predict(obs, deterministic=deterministic, action_masks=action_masks(env))[0]
        return masked
    if hasattr(policy, "predict"):
        return lambda obs, env: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return lambda obs, env: policy(obs)
    raise TypeError(f"cannot run {type(policy).__name__}: expected an SB3 model, an object with predict(obs) or "
                    f"a callable obs -> action")


def action_masks(env: gym.Env) -> np.ndarray:
    """``env.action_masks()`` through any Gymnasium wrappers."""
    return np.asarray(env.get_wrapper_attr("action_masks")())


def run_episode(env: gym.Env, action_fn: ActionFn, workload: Workload, max_steps: int = 1_000_000) -> dict[str, float]:
    """Serve ``workload`` in ``env`` with ``action_fn``; returns the episode's metric summary."""
    obs, info = env.reset(options={"workload": workload})
    for _ in range(max_steps):
        obs, _, terminated, truncated, info = env.step(action_fn(obs, env))
        if terminated or truncated:
            if truncated and not terminated:
                raise RuntimeError(f"episode truncated before every request finished ({workload.name}, "
                                   f"{len(workload)} requests)")
            return episode_summary(info)
    raise RuntimeError(f"policy did not finish {len(workload)} requests within {max_steps} env steps")


def episode_summary(info: Mapping[str, Any]) -> dict[str, float]:
    """The metric summary in the final ``info`` of an episode."""
    metrics = info.get("metrics")
    if metrics is None:
        raise KeyError(f"the final info has no 'metrics'; keys: {sorted(info)}")
    return dict(getattr(metrics, "summary", metrics))


def run_scheduler(scheduler: Any, workload: Workload, env: gym.Env) -> dict[str, float]:
    """Run a scheduler (``reset``/``decide``) directly on a simulator configured like ``env``."""
    cost_model, engine, oracle = simulator_config(env)
    return dict(Simulator(workload, cost_model, engine, oracle=oracle).run(scheduler).summary)


def simulator_config(env: gym.Env) -> tuple[Any, Any, bool]:
    """``(cost_model, engine config, oracle)`` of the simulator behind ``env``."""
    sim = env.unwrapped.sim
    return sim.cost_model, sim.config, sim.oracle


def workload_for_seed(env: gym.Env, seed: int) -> Workload:
    """The instance ``env.reset(seed=seed)`` would serve."""
    env.reset(seed=seed)
    return env.unwrapped.sim.workload


def runnable_heuristics(env: gym.Env, names: Sequence[str], workload: Workload) -> tuple[list[str], list[str]]:
    """``(runnable, skipped)``: the heuristics among ``names`` that can run in ``env``'s setting; oracle
    schedulers are skipped where output lengths are hidden (``oracle=False``)."""
    from baselines import OracleRequiredError, make_scheduler

    runnable, skipped = [], []
    for name in names:
        try:
            run_scheduler(make_scheduler(name), workload, env)
        except OracleRequiredError:
            skipped.append(name)
        else:
            runnable.append(name)
    return runnable, skipped


# ---- the optimum -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimumRecord:
    """What the CP-SAT solver established for one instance."""

    status: str
    objective: float
    best_bound: float
    wall_time: float
    time_limit: float

    @property
    def proven(self) -> bool:
        return self.status.upper() == "OPTIMAL" or math.isclose(self.objective, self.best_bound, rel_tol=1e-9)


class OptimumCache:
    """Solved optima on disk (JSON), keyed by ``(setting, objective, seed)``.

    A cached unproven result is re-solved when asked with a longer time limit than it was solved with.

    :param path: the JSON file (created on first write).
    :param solver: ``solve_optimal(workload, cost_model, engine, objective=, time_limit=, workers=, seed=)``;
        default :func:`baselines.optimal.solve_optimal`.
    """

    def __init__(self, path: str | Path, solver: Callable[..., Any] | None = None):
        self.path = Path(path)
        self._solver = solver
        self._records: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(setting: str, objective: str, seed: int) -> str:
        return f"{setting}|{objective}|{seed}"

    def get(self, setting: str, objective: str, seed: int) -> OptimumRecord | None:
        record = self._records.get(self.key(setting, objective, seed))
        return OptimumRecord(**record) if record else None

    def solve(self, setting: str, objective: str, seed: int, workload: Workload, env: gym.Env, *,
              time_limit: float, workers: int = 1) -> OptimumRecord:
        """The cached record, or solve (and cache) it."""
        cached = self.get(setting, objective, seed)
        if cached is not None and (cached.proven or cached.time_limit >= time_limit):
            return cached
        cost_model, engine, _ = simulator_config(env)
        result = self.solver(workload, cost_model, engine, objective=objective, time_limit=time_limit,
                             workers=workers, seed=0)
        # the simulator's float value of the schedule, comparable with every other policy's metrics
        value = result.replayed_objective if getattr(result, "replayed", None) is not None else result.objective
        record = OptimumRecord(str(result.status), float(value), float(result.best_bound),
                               float(result.wall_time), float(time_limit))
        self._records[self.key(setting, objective, seed)] = asdict(record)
        self.save()
        return record

    @property
    def solver(self) -> Callable[..., Any]:
        if self._solver is None:
            from baselines.optimal import solve_optimal

            self._solver = solve_optimal
        return self._solver

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._records, indent=1, sort_keys=True))
        tmp.replace(self.path)


# ---- the report --------------------------------------------------------------------------------------
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


# ---- the whole evaluation ----------------------------------------------------------------------------
def evaluate(env: gym.Env, policies: Mapping[str, Any], seeds: Sequence[int], *, objective: str = "latency",
             heuristics: Sequence[str] = (), optimum_cache: OptimumCache | None = None, setting_name: str = "",
             solver_time_limit: float = 10.0, solver_workers: int = 1,
             progress: bool = False) -> GapReport:
    """Evaluate ``policies`` (name -> policy, see :func:`as_action_fn`) and the ``heuristics`` (names in
    ``baselines.SCHEDULERS``, run directly on the simulator) on the instances ``env.reset(seed=s)`` draws for
    ``s`` in ``seeds``; with an ``optimum_cache``, also solve (or look up) the optimum of each instance."""
    from baselines import make_scheduler

    if optimum_cache is not None and not setting_name:
        raise ValueError("setting_name is required with an optimum cache (it keys the cached optima)")
    workloads = [workload_for_seed(env, seed) for seed in seeds]
    report = GapReport(objective, list(seeds), [len(w) for w in workloads])
    bar = _progress(progress, len(seeds) * (len(policies) + len(heuristics) + (optimum_cache is not None)))
    for name in heuristics:
        summaries = []
        for workload in workloads:
            summaries.append(run_scheduler(make_scheduler(name), workload, env))
            bar.update()
        report.add_summaries(name, summaries, heuristic=True)
    for name, policy in policies.items():
        action_fn = as_action_fn(policy)
        summaries = []
        for workload in workloads:
            summaries.append(run_episode(env, action_fn, workload))
            bar.update()
        report.add_summaries(name, summaries)
    if optimum_cache is not None:
        records = []
        for seed, workload in zip(seeds, workloads):
            records.append(optimum_cache.solve(setting_name, objective, seed, workload, env,
                                               time_limit=solver_time_limit, workers=solver_workers))
            bar.update()
        report.optimum = records
    bar.close()
    return report


def objective_value_of(summary: Mapping[str, float], objective: str) -> float:
    """``objective_value`` for a plain metric summary."""
    from infermax_env.metrics import RunMetrics

    return objective_value(RunMetrics({}, dict(summary)), objective)


def _progress(enabled: bool, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="evaluation", disable=not enabled)
