"""Simulator speed: replay a whole Azure 2023 trace under the vLLM scheduler.

Setting (INFERMAX): Llama-3-70B, TP 4 on A100 80GB, LinearCostModel, M = 100,000 KV tokens, C = 16,384.
Prints wall time, iterations simulated per second and simulated seconds per wall second.

    python benchmarks/sim_speed.py [--trace conv|code] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

from baselines import VLLMScheduler
from infermax_env import LinearCostModel, Simulator, load_azure_trace
from infermax_env.instances import INFERMAX_ENGINE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", choices=("conv", "code"), default="conv", help="which Azure 2023 trace to replay")
    parser.add_argument("--trace-dir", default=None, help="directory holding azure_<trace>_2023.csv")
    parser.add_argument("--repeats", type=int, default=3, help="timed replays (the fastest is reported)")
    args = parser.parse_args()

    workload = load_azure_trace(args.trace, args.trace_dir)
    cost_model = LinearCostModel()
    print(f"trace {args.trace}: {len(workload)} requests over {workload.duration:.0f} s; "
          f"M = {INFERMAX_ENGINE.kv_capacity}, C = {INFERMAX_ENGINE.token_budget}")
    best = float("inf")
    for repeat in range(args.repeats):
        sim = Simulator(workload, cost_model, INFERMAX_ENGINE)
        start = time.perf_counter()
        metrics = sim.run(VLLMScheduler())
        wall = time.perf_counter() - start
        best = min(best, wall)
        print(f"run {repeat + 1}: wall {wall:.2f} s, {sim.num_iterations} iterations "
              f"({sim.num_iterations / wall:,.0f} it/s), simulated {sim.clock:,.0f} s "
              f"({sim.clock / wall:,.0f} simulated s per wall s)")
    print(f"best wall time {best:.2f} s | total GPU time {metrics['total_gpu_time']:.1f} s | "
          f"mean TTLT {metrics['mean_ttlt']:.1f} s | evictions {metrics['evictions']} | "
          f"finished {metrics['finished']}/{metrics['requests']}")


if __name__ == "__main__":
    main()
