"""The whole evaluation: heuristics, policies and the optimum on the same seeded instances, into a
:class:`~agents.evaluation.report.GapReport`."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym

from .optimum_cache import OptimumCache
from .report import GapReport
from .rollouts import as_action_fn, run_episode, run_scheduler, workload_for_seed


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


def _progress(enabled: bool, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="evaluation", disable=not enabled)
