"""Heavy evaluation on a Ray cluster: the same function calls as a local loop, run as Ray tasks.

* :func:`ray_map` is ``[fn(*args) for args in calls]`` computed by Ray tasks, results in call order;
* ``python -m baselines.compare ... --ray [ADDRESS]`` runs the scheduler x workload grid through it;
* :func:`solve_optima` solves the CP-SAT optimum of many instances, one task each;
* :func:`agent_summaries` runs a saved SB3 agent's episodes over many seeds, a few seeds per task.

Any other evaluation goes through :func:`ray_map` with a module-level function. Results equal the local run's:
each task is the same deterministic call, only the process differs.

Where the tasks run: ``address=None`` joins the cluster named by ``RAY_ADDRESS`` if set, else starts a local
Ray on this machine; ``"auto"`` joins the cluster this node belongs to; ``"ray://HEAD:10001"`` connects to a
remote cluster's client server. To build a multi-node cluster: on the head node ``ray start --head``, on each
worker node ``ray start --address=HEAD:6379``; every node needs this package installed
(``pip install 'infermax-env[ray,optimal]'``) and, for trace windows, the traces at the same path. Needs the
``[ray]`` extra.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

from infermax_env.extras import require

T = TypeVar("T")


def ray_map(fn: Callable[..., T], calls: Sequence[tuple], *, address: str | None = None, num_cpus: float = 1,
            progress: bool = False, description: str = "tasks") -> list[T]:
    """``[fn(*args) for args in calls]`` as Ray tasks of ``num_cpus`` CPUs each, in the order of ``calls``.

    Joins (or starts, see the module docstring) the Ray cluster at ``address`` unless Ray is already
    initialised in this process. ``fn`` must be importable by the workers (a module-level function).
    """
    require("ray", "baselines.ray_pool")
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=num_cpus)(fn)
    pending = {remote.remote(*args): i for i, args in enumerate(calls)}
    results: list[Any] = [None] * len(pending)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc=description, unit="task")
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
            results[pending[ref]] = ray.get(ref)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return results


def solve_optima(workloads: Sequence[Any], cost_model: Any, engine: Any, objective: str = "latency", *,
                 time_limit: float = 60.0, workers: int = 1, seed: int = 0, address: str | None = None,
                 progress: bool = False) -> list[Any]:
    """:func:`baselines.optimal.solve_optimal` of each workload, one Ray task (of ``workers`` CPUs) per instance."""
    require("optimal", "baselines.ray_pool.solve_optima")
    calls = [(workload, cost_model, engine, objective, time_limit, workers, seed) for workload in workloads]
    return ray_map(_solve, calls, address=address, num_cpus=workers, progress=progress, description="optima")


def _solve(workload, cost_model, engine, objective, time_limit, workers, seed):
    from .optimal import solve_optimal

    return solve_optimal(workload, cost_model, engine, objective, time_limit=time_limit, workers=workers, seed=seed)


def agent_summaries(model_path: str, env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int], *,
                    algo: str | None = None, seeds_per_task: int = 8, address: str | None = None,
                    progress: bool = False) -> list[dict]:
    """:func:`agent_episodes` of the SB3 agent saved at ``model_path`` on each seed's instance, as Ray tasks of
    ``seeds_per_task`` seeds (each task loads the model once); summaries in the order of ``seeds``."""
    if seeds_per_task < 1:
        raise ValueError(f"seeds_per_task must be >= 1, got {seeds_per_task!r}")
    seeds = list(seeds)
    chunks = [seeds[i:i + seeds_per_task] for i in range(0, len(seeds), seeds_per_task)]
    results = ray_map(agent_episodes, [(model_path, env_id, env_kwargs, chunk, algo) for chunk in chunks],
                      address=address, progress=progress, description="agent episodes")
    return [summary for chunk in results for summary in chunk]


def agent_episodes(model_path: str, env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int],
                   algo: str | None = None) -> list[dict]:
    """The metric summary of one deterministic episode of the SB3 agent saved at ``model_path`` per seed, on the
    instance ``gym.make(env_id, **env_kwargs).reset(seed=seed)`` serves (MaskablePPO gets the env's masks); the
    local computation that :func:`agent_summaries` distributes. ``algo`` (an :data:`agents.ALGORITHMS` name) is
    needed for models not saved by ``train.py``."""
    require("sb3", "baselines.ray_pool.agent_episodes")
    import gymnasium as gym

    import infermax_env  # noqa: F401  (registers the envs in the worker)
    from agents import load_agent
    from agents.evaluation.rollouts import as_action_fn, run_episode, workload_for_seed

    env = gym.make(env_id, **env_kwargs)
    action_fn = as_action_fn(load_agent(model_path, algo=algo, device="cpu"))
    return [run_episode(env, action_fn, workload_for_seed(env, seed)) for seed in seeds]
