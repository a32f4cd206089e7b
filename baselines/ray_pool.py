"""Heavy evaluation on a Ray cluster: the same function calls as a local loop, run as Ray tasks.

* :func:`ray_map` is ``[fn(*args) for args in calls]`` computed by Ray tasks, results in call order;
* ``python -m baselines.compare ... --ray [ADDRESS]`` runs the scheduler x workload grid through it;
* :func:`solve_optima` solves the CP-SAT optimum of many instances, one task each;
* :func:`agents.ray_evaluation.agent_summaries` runs a saved SB3 agent's episodes over many seeds.

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

