"""Ray speedup: the same ``baselines.compare`` runs in a local loop and as Ray tasks (``baselines.ray_pool.ray_map``).

Runs vLLM, Sarathi, Orca and INFERMAX on a synthetic workload at 1x and 2x its rate (8 runs), first one after
another in this process, then on a Ray pool of ``--workers`` CPUs that is started and warmed up (each worker has
loaded the numba kernels) before the clock starts, so the figure is the pool's steady state; Ray's start is
printed apart. Each run's wall and CPU time are taken inside the run, so a worker that gets less than a core
shows up as wall time above CPU time. Checks that both give the same summaries. Needs the ``[ray]`` extra.

    python benchmarks/ray_speed.py --requests 4000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from baselines.compare import RunSetup, SchedulerSpec, run_one
from baselines.ray_pool import ray_map
from infermax_env import LinearCostModel, SyntheticGenerator
from infermax_env.extras import require
from infermax_env.instances import INFERMAX_ENGINE

SCHEDULERS = ("vllm", "sarathi", "orca", "infermax")


def timed_run(spec: SchedulerSpec, setup: RunSetup) -> tuple[dict, float, float]:
    """``run_one``'s summary with the run's wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_one(spec, setup).summary
    return summary, time.perf_counter() - wall, time.process_time() - cpu


def spread(results) -> str:
    return ", ".join(f"{wall:.1f}/{cpu:.1f}" for _, wall, cpu in results)


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests in the synthetic workload")
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting one")
    args = parser.parse_args(argv)
    require("ray", "benchmarks/ray_speed.py")
    import ray

    workload = SyntheticGenerator(num_requests=args.requests, rate=args.rate, arrival="poisson",
                                  name="ray-speed")(np.random.default_rng(0))
    setups = [RunSetup(workload.scale_rate(s), LinearCostModel(), INFERMAX_ENGINE, label=f"x{s:g}") for s in (1, 2)]
    tasks = [(SchedulerSpec.parse(name), setup) for setup in setups for name in SCHEDULERS]
    print(f"{len(tasks)} runs, {args.requests} requests; load average {os.getloadavg()}")

    timed_run(*tasks[0])                                       # load the numba kernels, as the warm-up does
    start = time.perf_counter()
    local = [timed_run(*task) for task in tasks]
    local_s = time.perf_counter() - start
    print(f"local loop: {local_s:.1f} s wall; per run wall/CPU s: {spread(local)}")

    start = time.perf_counter()
    if args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray_map(timed_run, tasks[:2 * args.workers])                # warm-up: two tasks per worker
    print(f"Ray start + warm-up: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    remote = ray_map(timed_run, tasks)
    ray_s = time.perf_counter() - start
    same = all(a[0] == b[0] for a, b in zip(local, remote))
    print(f"ray_map: {ray_s:.1f} s wall; per run wall/CPU s: {spread(remote)}")
    print(f"speedup {local_s / ray_s:.2f}x; same summaries: {same}; load average {os.getloadavg()}")
    ray.shutdown()
    if not same:
        raise SystemExit("the Ray runs differ from the local ones")
    return {"local_s": local_s, "ray_s": ray_s}


if __name__ == "__main__":
    main()
