"""Compare schedulers on one workload and deployment: a table, CSV/JSON, and plots.

Example (the default: a 5-minute window of the Azure conv trace in the INFERMAX setting)::

    python -m baselines.compare --schedulers vllm sarathi infermax sagesched --out results/compare
    python -m baselines.compare --schedulers vllm "sarathi:chunk_size=512" --trace code --window 0:600 \\
        --rate-scale 0.5 1 2 --slo-ttft 2 --slo-tpot 0.1

A scheduler is given as ``name`` or ``name:key=value,key=value`` (constructor arguments). Runs go in parallel
over schedulers and rate scales (``--jobs`` processes) with a progress bar. The output folder gets
``results.csv`` and ``results.json`` (one row per run), ``ttlt_cdf.png`` (CDF of time to last token) and
``bars.png`` (total GPU time, mean TTLT, evictions, throughput).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from infermax_env import (Deployment, EngineConfig, LinearCostModel, LogNormal, Simulator, SyntheticGenerator,
                          Workload, load_azure_trace)
from infermax_env.cost import CostModel, RooflineCostModel
from infermax_env.metrics import compute_metrics

from . import SCHEDULERS, make_scheduler

TABLE_COLUMNS = (
    ("total_gpu_time", "GPU s", "{:.1f}"), ("mean_ttft", "TTFT", "{:.2f}"), ("p50_ttft", "TTFT p50", "{:.2f}"),
    ("p99_ttft", "TTFT p99", "{:.2f}"), ("mean_tpot", "TPOT", "{:.4f}"), ("mean_ttlt", "TTLT", "{:.2f}"),
    ("p50_ttlt", "TTLT p50", "{:.2f}"), ("p99_ttlt", "TTLT p99", "{:.2f}"), ("throughput_tok_s", "tok/s", "{:.0f}"),
    ("evictions", "evict", "{:d}"), ("recomputed_tokens", "recomp tok", "{:d}"), ("slo_attainment", "SLO", "{:.3f}"),
    ("wall_s", "wall s", "{:.1f}"),
)
LINEAR_DEPLOYMENT = ("llama-3-70b", "a100-80gb", 4)


@dataclass(frozen=True)
class SchedulerSpec:
    """A registered scheduler name plus constructor arguments, written ``name:key=value,...``."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "SchedulerSpec":
        name, _, args = text.partition(":")
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(sorted(SCHEDULERS))}")
        kwargs: dict[str, Any] = {}
        for item in filter(None, args.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"scheduler argument {item!r} in {text!r} must be key=value")
            try:
                kwargs[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                kwargs[key] = value
        make_scheduler(name, **kwargs)  # fail early on bad arguments
        return cls(name, kwargs)

    @property
    def label(self) -> str:
        return self.name + ("" if not self.kwargs else ":" + ",".join(f"{k}={v}" for k, v in self.kwargs.items()))

    @property
    def requires_oracle(self) -> bool:
        return bool(SCHEDULERS[self.name].requires_oracle)


@dataclass(frozen=True)
class RunSetup:
    """Everything one run needs besides the scheduler (picklable, sent to worker processes)."""

    workload: Workload
    cost_model: CostModel
    engine: EngineConfig
    oracle: bool = True
    slo_ttft: float | None = None
    slo_tpot: float | None = None
    label: str = ""


@dataclass
class RunResult:
    scheduler: str
    config: str
    summary: dict[str, float]
    ttlt: np.ndarray
    wall_s: float


def run_one(spec: SchedulerSpec, setup: RunSetup) -> RunResult:
    """Run one scheduler to completion on ``setup``; returns its summary and per-request TTLT."""
    sim = Simulator(setup.workload, setup.cost_model, setup.engine, oracle=setup.oracle)
    start = time.perf_counter()
    sim.run(make_scheduler(spec.name, **spec.kwargs))
    wall = time.perf_counter() - start
    metrics = compute_metrics(sim, setup.slo_ttft, setup.slo_tpot)
    ttlt = metrics.requests["ttlt"][sim.finished]
    return RunResult(spec.label, setup.label, dict(metrics.summary), ttlt, wall)


def run_many(specs: Sequence[SchedulerSpec], setups: Sequence[RunSetup], jobs: int = 2,
             progress: bool = True, ray: str | None = None) -> list[RunResult]:
    """Every scheduler on every setup, ``jobs`` processes at a time, or as Ray tasks when ``ray`` is set (a
    cluster address, or ``"local"`` for a Ray started on this machine; see :mod:`baselines.ray_pool`); results
    in (setup, scheduler) order."""
    hidden = [s.label for s in specs if s.requires_oracle and not all(setup.oracle for setup in setups)]
    if hidden:
        raise ValueError(f"oracle schedulers {hidden} need the output lengths, which these runs hide")
    tasks = [(spec, setup) for setup in setups for spec in specs]
    if ray is not None:
        from .ray_pool import ray_map

        return ray_map(run_one, tasks, address=None if ray == "local" else ray, progress=progress, description="runs")
    if jobs <= 1 or len(tasks) == 1:
        return [run_one(spec, setup) for spec, setup in _progress(tasks, progress)]
    results: list[RunResult | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, spec, setup): i for i, (spec, setup) in enumerate(tasks)}
        for future in _progress(as_completed(futures), progress, total=len(tasks)):
            results[futures[future]] = future.result()
    return [r for r in results if r is not None]


def _progress(items, enabled: bool, total: int | None = None):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="runs", unit="run")


# ---- reporting ------------------------------------------------------------------------------------------
def format_table(results: Sequence[RunResult]) -> str:
    """A fixed-width table, one row per run (times in seconds)."""
    present = [c for c in TABLE_COLUMNS if c[0] == "wall_s" or any(c[0] in r.summary for r in results)]
    header = ["scheduler", "config"] + [title for _, title, _ in present]
    rows = [[r.scheduler, r.config] + [_cell(r, key, fmt) for key, _, fmt in present] for r in results]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).rjust(w) if i > 1 else str(x).ljust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in [header] + rows]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def _cell(result: RunResult, key: str, fmt: str) -> str:
    value = result.wall_s if key == "wall_s" else result.summary.get(key, math.nan)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return fmt.format(int(value) if fmt == "{:d}" else value)


def write_results(results: Sequence[RunResult], out: Path, meta: dict[str, Any]) -> list[Path]:
    """results.csv, results.json, ttlt_cdf.png and bars.png in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in results for k in r.summary})
    csv_path = out / "results.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scheduler", "config", "wall_s"] + keys)
        for r in results:
            writer.writerow([r.scheduler, r.config, f"{r.wall_s:.3f}"] + [r.summary.get(k, "") for k in keys])
    json_path = out / "results.json"
    rows = [{"scheduler": r.scheduler, "config": r.config, "wall_s": r.wall_s,
             "summary": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in r.summary.items()}} for r in results]
    json_path.write_text(json.dumps({"setup": meta, "runs": rows}, indent=2))
    return [csv_path, json_path, plot_ttlt_cdf(results, out / "ttlt_cdf.png"), plot_bars(results, out / "bars.png")]


def _run_label(result: RunResult, many_configs: bool) -> str:
    return f"{result.scheduler} [{result.config}]" if many_configs else result.scheduler


def plot_ttlt_cdf(results: Sequence[RunResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    many = len({r.config for r in results}) > 1
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in results:
        values = np.sort(r.ttlt)
        if len(values):
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=_run_label(r, many))
    ax.set_xscale("log")
    ax.set_xlabel("time to last token (s)")
    ax.set_ylabel("fraction of requests")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bars(results: Sequence[RunResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    many = len({r.config for r in results}) > 1
    labels = [_run_label(r, many) for r in results]
    panels = (("total_gpu_time", "total GPU time (s)"), ("mean_ttlt", "mean TTLT (s)"),
              ("evictions", "evictions"), ("throughput_tok_s", "throughput (tokens/s)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 0.35 * len(results) + 2.2))
    for ax, (key, title) in zip(axes, panels):
        ax.barh(labels, [r.summary.get(key, math.nan) for r in results], color="#4C72B0")
        ax.set_title(title, fontsize=9)
        ax.invert_yaxis()
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- the CLI ---------------------------------------------------------------------------------------------
def _window(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    try:
        window = (float(start), float(end))
    except ValueError:
        raise argparse.ArgumentTypeError(f"window must be START:END seconds, got {text!r}") from None
    if not sep or window[1] <= window[0]:
        raise argparse.ArgumentTypeError(f"window must be START:END seconds with END > START, got {text!r}")
    return window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m baselines.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--schedulers", nargs="+", default=["vllm", "sarathi", "orca", "infermax", "sagesched",
                                                            "mlfq", "random"],
                        help=f"name or name:key=value,...; known: {', '.join(sorted(SCHEDULERS))}")
    work = parser.add_argument_group("workload")
    work.add_argument("--trace", choices=["conv", "code"], default="conv", help="Azure 2023 trace")
    work.add_argument("--trace-dir", default=None, help="folder with the trace CSVs (default: shared/traces)")
    work.add_argument("--window", type=_window, default=(0.0, 300.0), help="START:END seconds of the trace")
    work.add_argument("--full-trace", action="store_true", help="replay the whole trace (ignores --window)")
    work.add_argument("--synthetic", type=int, default=None, metavar="N",
                      help="instead of a trace: N Poisson arrivals with lognormal lengths")
    work.add_argument("--rate", type=float, default=2.0, help="synthetic arrival rate (requests/s)")
    work.add_argument("--prompt-median", type=float, default=1000.0, help="synthetic prompt median (tokens)")
    work.add_argument("--output-median", type=float, default=128.0, help="synthetic output median (tokens)")
    work.add_argument("--rate-scale", type=float, nargs="+", default=[1.0],
                      help="arrival-rate multipliers; one set of runs per value")
    work.add_argument("--seed", type=int, default=0, help="seed of the synthetic workload")
    deploy = parser.add_argument_group("deployment")
    deploy.add_argument("--cost", choices=["linear", "roofline"], default="linear",
                        help="linear = INFERMAX's fitted model (Llama-3-70B, TP 4, A100 80GB only)")
    deploy.add_argument("--model", default=LINEAR_DEPLOYMENT[0])
    deploy.add_argument("--gpu", default=LINEAR_DEPLOYMENT[1])
    deploy.add_argument("--tp", type=int, default=LINEAR_DEPLOYMENT[2], help="tensor-parallel degree")
    deploy.add_argument("-M", "--kv-capacity", type=int, default=None,
                        help="KV tokens (default: 100,000 with --cost linear, else what the deployment leaves)")
    deploy.add_argument("-C", "--token-budget", type=int, default=16_384, help="tokens per iteration")
    deploy.add_argument("--max-batch-size", type=int, default=1_000_000)
    deploy.add_argument("--block-size", type=int, default=1)
    parser.add_argument("--hide-output-lengths", action="store_true",
                        help="simulate with oracle=False (oracle schedulers are then refused)")
    parser.add_argument("--slo-ttft", type=float, default=None, help="TTFT target (s) for SLO attainment")
    parser.add_argument("--slo-tpot", type=float, default=None, help="TPOT target (s) for SLO attainment")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run on Ray instead (no ADDRESS: a local Ray; 'auto' or ray://HEAD:10001: a cluster)")
    parser.add_argument("--out", default="results/compare", help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _cost_and_engine(args: argparse.Namespace) -> tuple[CostModel, EngineConfig]:
    deployment = (args.model, args.gpu, args.tp)
    if args.cost == "linear":
        if deployment != LINEAR_DEPLOYMENT:
            raise ValueError(f"--cost linear has coefficients for {LINEAR_DEPLOYMENT} only, got {deployment}; "
                             f"use --cost roofline for other deployments")
        cost: CostModel = LinearCostModel()
        capacity = args.kv_capacity or 100_000
    else:
        cost = RooflineCostModel(args.model, args.gpu, args.tp)
        capacity = args.kv_capacity or Deployment(args.model, args.gpu, args.tp).kv_capacity_tokens
    engine = EngineConfig(kv_capacity=capacity, token_budget=args.token_budget, max_batch_size=args.max_batch_size,
                          block_size=args.block_size)
    return cost, engine


def _base_workload(args: argparse.Namespace) -> Workload:
    if args.synthetic is not None:
        generator = SyntheticGenerator(num_requests=args.synthetic, prompt=LogNormal(args.prompt_median, 1.0, 16_000),
                                       output=LogNormal(args.output_median, 1.0, 4_000), arrival="poisson",
                                       rate=args.rate, name="synthetic")
        return generator(np.random.default_rng(args.seed))
    trace = load_azure_trace(args.trace, args.trace_dir)
    return trace if args.full_trace else trace.window(*args.window)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        specs = [SchedulerSpec.parse(text) for text in args.schedulers]
        cost, engine = _cost_and_engine(args)
        base = _base_workload(args)
    except (ValueError, LookupError, OSError) as error:
        parser.error(str(error))
    oracle = not args.hide_output_lengths
    refused = [s.label for s in specs if s.requires_oracle and not oracle]
    if refused:
        parser.error(f"oracle schedulers {refused} cannot run with --hide-output-lengths")
    setups = [RunSetup(base.scale_rate(scale) if scale != 1.0 else base, cost, engine, oracle, args.slo_ttft,
                       args.slo_tpot, f"rate x{scale:g}") for scale in args.rate_scale]
    summary = base.summary()
    print(f"workload: {base.name}, {summary['requests']} requests over {summary['duration_s']:.0f} s, "
          f"prompt mean {summary['prompt_mean']:.0f}, output mean {summary['output_mean']:.0f}; "
          f"M = {engine.kv_capacity}, C = {engine.token_budget}, cost {args.cost}", flush=True)
    results = run_many(specs, setups, jobs=args.jobs, progress=not args.no_progress, ray=args.ray)
    print(format_table(results))
    meta = {"argv": list(sys.argv[1:] if argv is None else argv), "workload": summary,
            "engine": {"kv_capacity": engine.kv_capacity, "token_budget": engine.token_budget,
                       "max_batch_size": engine.max_batch_size, "block_size": engine.block_size},
            "cost": args.cost, "deployment": [args.model, args.gpu, args.tp], "oracle": oracle}
    paths = write_results(results, Path(args.out), meta)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
