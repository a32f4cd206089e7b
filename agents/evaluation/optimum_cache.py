"""Optima of evaluation instances from the CP-SAT solver, cached on disk."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from infermax_env.workload import Workload

from .rollouts import simulator_config


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
