"""The residual agents against SageSched and "tuned" on held-out InferMax-v0 windows (oracle False).

    python benchmarks/agent_realistic.py --runs runs/residual-0 runs/residual-1 runs/residual-2
    python benchmarks/agent_realistic.py --runs agents/checkpoints/residual_reservation_tuned --windows 20 --long-windows 10

Each run folder (or checkpoint folder) holds a ``best_model.zip`` written by ``agents.train_residual`` (one
training seed each). Held-out windows use the evaluation seeds ``10,000,000 + i`` (training windows are drawn
below 10,000,000 and validation windows at 15,000,000 + i), at 0.5x, 1x and 1.5x the trace rate with 256
requests, and at 1x with 1,024 requests (generalisation: the agents trained on at most 256). For every setting
the table gives each policy's mean TTLT and the paired per-window difference of each agent (and of the agents'
per-window mean over seeds) to SageSched and to "tuned", as a percentage of the reference's mean TTLT with a
bootstrap 95% CI over windows. Writes ``docs/agent_realistic.md``, ``docs/agent_realistic.png`` and a CSV of
every window beside them.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch as th
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evaluation import EVAL_SEED_OFFSET  # noqa: E402
from agents.train_residual import env_from_metadata  # noqa: E402
from baselines import make_scheduler  # noqa: E402
from infermax_env.envs.config import build_config, conv_workload_generator  # noqa: E402
from infermax_env.simulator import Simulator  # noqa: E402

REFERENCES = ("sagesched", "tuned")
SETTINGS = ((0.5, 256), (1.0, 256), (1.5, 256), (1.0, 1024))


def held_out_window(index: int, rate: float, num_requests: int):
    generator, _ = conv_workload_generator(num_requests, rate)
    return generator(np.random.default_rng(EVAL_SEED_OFFSET + index))


def heuristic_window(name: str, index: int, rate: float, num_requests: int) -> float:
    """Mean TTLT of heuristic ``name`` on held-out window ``index`` (a worker task)."""
    config = build_config("default")
    workload = held_out_window(index, rate, num_requests)
    return Simulator(workload, config.cost_model, config.engine, oracle=False).run(make_scheduler(name)).summary[
        "mean_ttlt"]


def agent_window(model_path: str, index: int, rate: float, num_requests: int) -> float:
    """Mean TTLT of the deterministic residual agent on held-out window ``index`` (a worker task)."""
    from agents.builders import saved_metadata
    from stable_baselines3 import PPO

    th.set_num_threads(1)
    env_kwargs = saved_metadata(model_path)["env_kwargs"]
    model = PPO.load(model_path, device="cpu")
    env = env_from_metadata(env_kwargs)
    obs, _ = env.reset(options={"workload": held_out_window(index, rate, num_requests)})
    while True:
        obs, _, terminated, truncated, info = env.step(model.predict(obs, deterministic=True)[0])
        if terminated or truncated:
            break
    if "metrics" not in info:
        raise RuntimeError(f"{model_path}: episode on window {index} truncated before every request finished")
    return info["metrics"]["mean_ttlt"]


def zero_correction_base(model_path: Path) -> str | None:
    """The base heuristic of an agent whose correction head is exactly zero (it then *is* that heuristic,
    as tests/test_residual.py proves), else None."""
    from agents.builders import saved_metadata
    from agents.residual import correction_is_zero
    from stable_baselines3 import PPO

    return saved_metadata(model_path)["env_kwargs"]["base"] if correction_is_zero(
        PPO.load(model_path, device="cpu")) else None


def paired_percent(policy: np.ndarray, reference: np.ndarray, resamples: int = 10_000,
                   seed: int = 0) -> tuple[float, float, float]:
    """Mean paired difference as a % of the reference's mean, with a bootstrap 95% CI over windows."""
    rng = np.random.default_rng(seed)
    diff = policy - reference
    picks = rng.integers(0, len(diff), size=(resamples, len(diff)))
    boot = 100 * diff[picks].mean(axis=1) / reference[picks].mean(axis=1)
    return 100 * diff.mean() / reference.mean(), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="folders holding best_model.zip (one per seed)")
    parser.add_argument("--windows", type=int, default=20, help="held-out 256-request windows per rate")
    parser.add_argument("--long-windows", type=int, default=10, help="held-out 1,024-request windows")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--out", default="docs/agent_realistic", help="path stem of the .md/.png/.csv written")
    args = parser.parse_args(argv)
    models = [Path(run) / "best_model.zip" for run in args.runs]
    missing = [str(m) for m in models if not m.is_file()]
    if missing:
        parser.error(f"no best_model.zip in: {', '.join(missing)}")
    zero = [zero_correction_base(m) for m in models]
    started = time.perf_counter()
    tasks = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for rate, num_requests in SETTINGS:
            count = args.windows if num_requests == 256 else args.long_windows
            names = sorted(set(REFERENCES) | {base for base in zero if base})
            for i in range(count):
                for name in names:
                    tasks[("heuristic", name, rate, num_requests, i)] = pool.submit(heuristic_window, name, i, rate,
                                                                                    num_requests)
                for model, base in zip(models, zero):
                    if base is None:
                        tasks[("agent", str(model), rate, num_requests, i)] = pool.submit(
                            agent_window, str(model), i, rate, num_requests)
        results = {key: future.result() for key, future in tqdm(tasks.items(), desc="held-out windows", unit="run")}
    rows, lines, plot = [], [], []
    for rate, num_requests in SETTINGS:
        count = args.windows if num_requests == 256 else args.long_windows
        if count < 1:
            continue

        def column(kind: str, name: str) -> np.ndarray:
            return np.array([results[(kind, name, rate, num_requests, i)] for i in range(count)])

        ttlt = {name: column("heuristic", name) for name in REFERENCES}
        seeds = []
        for run, model, base in zip(args.runs, models, zero):
            seed_values = column("heuristic", base) if base else column("agent", str(model))
            ttlt[f"agent {Path(run).name}" + (f" (zero correction = {base})" if base else "")] = seed_values
            seeds.append(seed_values)
        ttlt["agent (mean over seeds)"] = np.mean(seeds, axis=0)
        setting = f"{rate:g}x, {num_requests} requests, {count} windows"
        per_seed = [v.mean() for v in seeds]
        spread = 100 * (max(per_seed) - min(per_seed)) / np.mean(per_seed)
        lines.append(f"\n### {setting}\n\nSeed spread of the agents' mean TTLT: {spread:.2f}%\n")
        lines.append("| policy | mean TTLT (s) | vs sagesched (%, 95% CI) | vs tuned (%, 95% CI) |")
        lines.append("|---|---|---|---|")
        for name, values in ttlt.items():
            cells = [f"{name}", f"{values.mean():.3f}"]
            for reference in REFERENCES:
                if name == reference:
                    cells.append("-")
                    continue
                mean, low, high = paired_percent(values, ttlt[reference])
                cells.append(f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]")
                if name == "agent (mean over seeds)":
                    plot.append((f"{rate:g}x/{num_requests}", reference, mean, low, high))
            lines.append("| " + " | ".join(cells) + " |")
        for i in range(count):
            for name, values in ttlt.items():
                rows.append({"rate": rate, "requests": num_requests, "seed": EVAL_SEED_OFFSET + i, "policy": name,
                             "mean_ttlt": values[i]})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = [
        "# Residual agents vs SageSched and tuned on held-out InferMax-v0 windows (oracle False)",
        "",
        f"Written by `python benchmarks/{Path(__file__).name} --runs {' '.join(args.runs)} --windows "
        f"{args.windows} --long-windows {args.long_windows}` in {time.perf_counter() - started:.0f} s. "
        "Negative differences are better (lower mean TTLT). Evaluation seeds 10,000,000 + i; agents trained on "
        "seeds below 10,000,000 and validated on 15,000,000 + i.",
    ]
    out.with_suffix(".md").write_text("\n".join(header + lines) + "\n")
    write_plot(plot, out.with_suffix(".png"))
    print("\n".join(lines))
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.png')}, {out.with_suffix('.csv')}")
    return 0


def write_plot(points, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({p[0] for p in points}, key=[p[0] for p in points].index)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for offset, reference in ((-0.15, "sagesched"), (0.15, "tuned")):
        chosen = [p for p in points if p[1] == reference]
        x = np.array([settings.index(p[0]) for p in chosen]) + offset
        means = np.array([p[2] for p in chosen])
        errors = np.array([[p[2] - p[3] for p in chosen], [p[4] - p[2] for p in chosen]])
        axis.errorbar(x, means, yerr=errors, fmt="o", capsize=4, label=f"agent - {reference}")
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_xticks(range(len(settings)), settings)
    axis.set_ylabel("paired mean TTLT difference (%)")
    axis.set_title("Residual agent (mean over seeds), 95% bootstrap CI")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
