"""Retune the "tuned" baseline's weights (baselines/tuned_weights.json) by CEM on InferMax-v0 training windows.

    python benchmarks/retune_tuned.py                 # 2 windows per rate, population 8, 5 iterations
    python benchmarks/retune_tuned.py --windows 4 --iterations 8 --population 12

Windows are drawn with seeds of ``agents.evaluation.training_seeds`` (below the evaluation range) at 0.5x, 1x
and 1.5x the trace rate; the objective is the mean of (sum of TTLT / SageSched's) over them. The best weights
so far are written after every iteration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evaluation import training_seeds  # noqa: E402
from baselines.tuned import WEIGHTS_PATH, tune  # noqa: E402
from infermax_env.envs.config import build_config, conv_workload_generator  # noqa: E402

RATES = (0.5, 1.0, 1.5)


def training_workloads(num_windows: int, seed: int, rates: tuple[float, ...] = RATES,
                       num_requests: int = 256):
    """``num_windows`` InferMax-v0 windows per rate, drawn with training seeds (below the evaluation range)."""
    seeds = list(islice(training_seeds(seed), num_windows * len(rates)))
    workloads = []
    for i, rate in enumerate(rates):
        generator, _ = conv_workload_generator(num_requests, rate)
        workloads += [generator(np.random.default_rng(s)) for s in seeds[i * num_windows:(i + 1) * num_windows]]
    return workloads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Retune the 'tuned' baseline's weights by CEM on training windows")
    parser.add_argument("--windows", type=int, default=2, help="training windows per rate (0.5x, 1x, 1.5x)")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--seed", type=int, default=17, help="training-seed stream and CEM sampling seed")
    parser.add_argument("--output", default=str(WEIGHTS_PATH))
    args = parser.parse_args(argv)
    config = build_config("default")
    started = time.perf_counter()
    workloads = training_workloads(args.windows, args.seed)

    def save(weights: dict[str, float], cost: float, iterations_done: int) -> None:
        record = {"weights": weights, "training_relative_sum_ttlt": cost,
                  "tuning": {"method": "CEM", "windows_per_rate": args.windows, "rates": list(RATES),
                             "requests_per_window": 256, "iterations": iterations_done,
                             "population": args.population, "seed_stream": args.seed,
                             "workload_source": config.workload_source,
                             "wall_seconds": round(time.perf_counter() - started, 1)}}
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n")

    weights, cost = tune(workloads, config.engine, config.cost_model, args.iterations, args.population, elite=2,
                         seed=args.seed, log=lambda line: print(line, flush=True), on_best=save)
    print(f"wrote {args.output}: {weights} (training cost {cost:.4f} of SageSched's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
