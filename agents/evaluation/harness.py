"""The whole evaluation: heuristics, policies and the optimum on the same seeded instances, into a
:class:`~agents.evaluation.report.GapReport`."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym

from .optimum_cache import OptimumCache, solver_settings
from .report import GapReport
from .rollouts import as_action_fn, run_episode, run_scheduler, workload_for_seed


def evaluate(env: gym.Env, policies: Mapping[str, Any], seeds: Sequence[int], *, objective: str = "latency",
             heuristics: Sequence[str] = (), optimum_cache: OptimumCache | None = None, setting_name: str = "",
             solver_time_limit: float = 10.0, solver_workers: int = 1,
             progress: bool = False) -> GapReport:
    """Evaluate ``policies`` (name -> policy, see :func:`~agents.evaluation.rollouts.as_action_fn`) and the
    ``heuristics`` (names in ``baselines.SCHEDULERS``, run directly on the simulator) on the instances
    ``env.reset(seed=s)`` draws for ``s`` in ``seeds``; with an ``optimum_cache``, also solve (or look up) the
    optimum of each instance with these solver settings.

    Policies count as reading true output lengths (the report's ``oracle`` column) when ``env`` shows them
    (``oracle=True``); heuristics when they require the oracle. With ``progress``, one bar counts instances
    for the heuristics and the solver and one per policy counts env steps (policy episodes can be long).
    """
    from baselines import SCHEDULERS, make_scheduler
    from tqdm.auto import tqdm

    if optimum_cache is not None and not setting_name:
        raise ValueError("setting_name is required with an optimum cache (it keys the cached optima)")
    workloads = [workload_for_seed(env, seed) for seed in seeds]
    report = GapReport(objective, list(seeds), [len(w) for w in workloads])
    env_oracle = bool(env.unwrapped.config.oracle)
    with tqdm(total=len(seeds) * len(heuristics), desc="heuristics (instances)", disable=not progress) as bar:
        for name in heuristics:
            summaries = []
            for workload in workloads:
                summaries.append(run_scheduler(make_scheduler(name), workload, env))
                bar.update()
            report.add_summaries(name, summaries, heuristic=True, oracle=SCHEDULERS[name].requires_oracle)
    for name, policy in policies.items():
        action_fn = as_action_fn(policy)
        summaries = []
        with tqdm(desc=f"{name} (env steps)", unit="step", disable=not progress) as bar:
            for i, workload in enumerate(workloads):
                bar.set_postfix_str(f"instance {i + 1}/{len(workloads)}")
                summaries.append(run_episode(env, action_fn, workload, on_step=bar.update))
        report.add_summaries(name, summaries, oracle=env_oracle)
    if optimum_cache is not None:
        report.solver = solver_settings(solver_time_limit, solver_workers)
        records = []
        for seed, workload in tqdm(list(zip(seeds, workloads)), desc="optimum (instances)", disable=not progress):
            records.append(optimum_cache.solve(setting_name, objective, seed, workload, env,
                                               time_limit=solver_time_limit, workers=solver_workers))
        report.optimum = records
    return report
