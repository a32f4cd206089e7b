"""Optima of evaluation instances from the CP-SAT solver, cached on disk and keyed by the solver settings."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from infermax_env.workload import Workload

from .rollouts import simulator_config

SOLVER_SEED = 0
"""CP-SAT's random seed for every evaluation solve."""
SOLVER_MODEL = "dominance rules, bound cuts, fixed-charge bound on half the time"
"""What ``solve_optimal`` does by default; part of the cache key, so records of another method are not reused."""


@dataclass(frozen=True)
class OptimumRecord:
    """What the CP-SAT solver established for one instance: the best schedule it found (``objective``, the
    simulator's value of it) and a lower bound on the optimum (``best_bound``)."""

    status: str
    objective: float
    best_bound: float
    wall_time: float
    time_limit: float
    workers: int = 1
    source: str = ""
    """Where the best schedule came from (``OptimalResult.source``): ``"solver"``, ``"solver+<heuristic>"``, or a
    heuristic's name when the search did not improve on the heuristic schedule it started from (that heuristic
    then shows a 0% gap to best known)."""

    @property
    def proven(self) -> bool:
        return self.status.upper() == "OPTIMAL" or math.isclose(self.objective, self.best_bound, rel_tol=1e-9)


def solver_settings(time_limit: float, workers: int) -> str:
    """A readable description of the solver settings (printed with every gap table)."""
    return (f"CP-SAT ({SOLVER_MODEL}), {time_limit:g} s per instance, {workers} worker{'s' if workers != 1 else ''}, "
            f"seed {SOLVER_SEED}")


class OptimumCache:
    """Solved optima on disk (JSON), keyed by ``(setting, objective, seed, time limit, workers, model)``: the same
    command always reads the same records, and other solver settings never overwrite them.

    :param path: the JSON file (created on first write).
    :param solver: ``solve_optimal(workload, cost_model, engine, objective=, time_limit=, workers=, seed=)``;
        default :func:`baselines.optimal.solve_optimal`.
    """

    def __init__(self, path: str | Path, solver: Callable[..., Any] | None = None):
        self.path = Path(path)
        self._solver = solver
        self._records: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(setting: str, objective: str, seed: int, time_limit: float, workers: int) -> str:
        return f"{setting}|{objective}|{seed}|time_limit={time_limit:g}|workers={workers}|model={SOLVER_MODEL}"

    def get(self, setting: str, objective: str, seed: int, time_limit: float, workers: int) -> OptimumRecord | None:
        record = self._records.get(self.key(setting, objective, seed, time_limit, workers))
        if not record:
            return None
        known = {f.name for f in fields(OptimumRecord)}
        return OptimumRecord(**{k: v for k, v in record.items() if k in known})

    def solve(self, setting: str, objective: str, seed: int, workload: Workload, env: gym.Env, *,
              time_limit: float, workers: int = 1) -> OptimumRecord:
        """The cached record for these solver settings, or solve (and cache) it."""
        cached = self.get(setting, objective, seed, time_limit, workers)
        if cached is not None:
            return cached
        cost_model, engine, _ = simulator_config(env)
        result = self.solver(workload, cost_model, engine, objective=objective, time_limit=time_limit,
                             workers=workers, seed=SOLVER_SEED)
        # the simulator's float value of the schedule, comparable with every other policy's metrics
        value = result.replayed_objective if getattr(result, "replayed", None) is not None else result.objective
        record = OptimumRecord(str(result.status), float(value), float(result.best_bound), float(result.wall_time),
                               float(time_limit), int(workers), str(getattr(result, "source", "solver")))
        self._records[self.key(setting, objective, seed, time_limit, workers)] = asdict(record)
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
