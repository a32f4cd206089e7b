"""Reproduce the two source papers' headline comparisons on the simulator.

1. INFERMAX (Kim et al.): in its setting (Llama-3-70B, TP 4, A100 80GB, LinearCostModel, M = 100,000,
   C = 16,384, Azure 2023 conv and code traces replayed whole) compare total GPU time and mean TTLT of the
   preempting schedulers with their no-eviction counterparts (``*_noe``: reserve I + O - 1 at admission).
   The paper reports that preemption cuts GPU cost by about 30%. A synthetic long-output workload (outputs
   twice as long as prompts) is added to show where preemption pays.
2. SageSched (Gan et al.): mean TTLT of the Gittins policy on predicted output-length distributions against
   FCFS (vLLM, Sarathi, and global FCFS in SageSched's own batch structure) and SJF on the predicted length,
   at loads where queues form (conv at half its rate, code at its rate). The paper reports > 28.7% better.

    python benchmarks/paper_findings.py [--jobs 2] [--out results/paper_findings] [--window START:END]
                                        [--experiments infermax sagesched]

``--window`` replays only part of each trace (a quick check); the published figures use the whole traces.
Each experiment writes results.csv/json, ttlt_cdf.png and bars.png into its own folder under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from baselines.compare import RunResult, RunSetup, SchedulerSpec, format_table, run_many, write_results
from infermax_env import LinearCostModel, LogNormal, SyntheticGenerator, Workload, load_azure_trace
from infermax_env.instances import INFERMAX_ENGINE

PREEMPTION_PAIRS = (("vllm", "vllm_noe"), ("sarathi", "sarathi_noe"), ("infermax", "infermax_noe"),
                    ("sort_prompt", "sort_prompt_noe"), ("srpt", "srpt_noe"))
SAGESCHED_RIVALS = ("vllm", "sarathi", "sort_arrival", "sjf_predicted")
SAGESCHED_LOADS = (("conv", 0.5), ("code", 1.0))
LONG_OUTPUT = SyntheticGenerator(num_requests=3000, prompt=LogNormal(300, 1.0, 8000), output=LogNormal(600, 1.0, 4000),
                                 arrival="poisson", rate=3.0, name="synthetic-long-output")


def _trace(kind: str, args: argparse.Namespace) -> Workload:
    trace = load_azure_trace(kind, args.trace_dir)
    return trace.window(*args.window) if args.window else trace


def preemption_report(results: list[RunResult]) -> str:
    """Per pair: GPU time and mean TTLT with and without preemption, and the change preemption makes."""
    by_name = {r.scheduler: r for r in results}
    lines = [f"{'pair':28s} {'GPU s (evict)':>14s} {'GPU s (noe)':>12s} {'GPU change':>11s} "
             f"{'TTLT (evict)':>13s} {'TTLT (noe)':>11s} {'evictions':>10s}"]
    for evicting, reserving in PREEMPTION_PAIRS:
        a, b = by_name[evicting].summary, by_name[reserving].summary
        change = (a["total_gpu_time"] - b["total_gpu_time"]) / b["total_gpu_time"]
        lines.append(f"{evicting + ' vs ' + reserving:28s} {a['total_gpu_time']:14.1f} {b['total_gpu_time']:12.1f} "
                     f"{change:+11.1%} {a['mean_ttlt']:13.2f} {b['mean_ttlt']:11.2f} {int(a['evictions']):10d}")
    return "\n".join(lines)


def sagesched_report(results: list[RunResult]) -> str:
    by_name = {r.scheduler: r.summary["mean_ttlt"] for r in results}
    ours = by_name["sagesched"]
    return "\n".join(f"sagesched mean TTLT {ours:.2f} s vs {rival} {by_name[rival]:.2f} s: "
                     f"{(by_name[rival] - ours) / by_name[rival]:.1%} lower" for rival in SAGESCHED_RIVALS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace-dir", default=None, help="folder with azure_<kind>_2023.csv")
    parser.add_argument("--window", type=lambda t: tuple(float(x) for x in t.split(":")), default=None,
                        help="START:END seconds of each trace instead of the whole trace")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="results/paper_findings")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic long-output workload")
    parser.add_argument("--experiments", nargs="+", choices=("infermax", "sagesched"),
                        default=["infermax", "sagesched"])
    args = parser.parse_args()
    out = Path(args.out)
    cost = LinearCostModel()
    started = time.perf_counter()

    if "infermax" in args.experiments:
        infermax_experiment(args, cost, out)
    if "sagesched" in args.experiments:
        sagesched_experiment(args, cost, out)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s; figures and tables under {out}")


def infermax_experiment(args: argparse.Namespace, cost: LinearCostModel, out: Path) -> None:
    specs = [SchedulerSpec.parse(name) for pair in PREEMPTION_PAIRS for name in pair]
    workloads = [_trace("conv", args), _trace("code", args), LONG_OUTPUT(np.random.default_rng(args.seed))]
    for workload in workloads:
        setup = RunSetup(workload, cost, INFERMAX_ENGINE, label=workload.name)
        results = run_many(specs, [setup], jobs=args.jobs)
        print(f"\n== INFERMAX setting, {workload.name}: {len(workload)} requests over {workload.duration:.0f} s ==")
        print(format_table(results))
        print(preemption_report(results))
        write_results(results, out / f"infermax_{workload.name}", {"experiment": "infermax", "workload": workload.name})


def sagesched_experiment(args: argparse.Namespace, cost: LinearCostModel, out: Path) -> None:
    specs = [SchedulerSpec.parse(name) for name in ("sagesched",) + SAGESCHED_RIVALS]
    for kind, scale in SAGESCHED_LOADS:
        workload = _trace(kind, args).scale_rate(scale)
        setup = RunSetup(workload, cost, INFERMAX_ENGINE, oracle=False, label=f"{kind} x{scale:g}")
        results = run_many(specs, [setup], jobs=args.jobs)
        print(f"\n== SageSched comparison, {kind} at {scale:g}x its rate: {len(workload)} requests over "
              f"{workload.duration:.0f} s (output lengths hidden) ==")
        print(format_table(results))
        print(sagesched_report(results))
        write_results(results, out / f"sagesched_{kind}", {"experiment": "sagesched", "workload": kind, "rate": scale})


if __name__ == "__main__":
    main()
