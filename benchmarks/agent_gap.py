"""The agent figures: train (or load) an agent, then its gap to the optimum against every heuristic's on held-out
instances, plus training throughput and wall time.

    # issue figure 1: 100 held-out InferMax-Tiny-v0 instances, latency objective, training budget <= 30 min
    python benchmarks/agent_gap.py --timesteps 150000 --episodes 100 --solver-time-limit 8
    # an already trained model
    python benchmarks/agent_gap.py --model runs/<timestamp>/model.zip --episodes 100
    # issue figure 2: InferMax-v0 (Azure conv trace windows of 256 requests; no optimum at that size), output
    # lengths hidden as for the non-oracle heuristics it is compared with: mean TTLT and total GPU time
    python benchmarks/agent_gap.py --env-id InferMax-v0 --algo ppo --env-kwargs '{"oracle": false}' \
        --timesteps 30000 --episodes 5 --no-optimum --heuristics vllm,sarathi,infermax,sagesched \
        --output-dir runs/agent_gap_v0

It drives ``train.main`` (the same code path as ``python train.py``) and then prints the headline numbers from
the run's ``gap_table.csv``: mean and worst gap of the agent and of the best heuristic, and whether the issue's
target (agent mean gap under 5% and at most half the best heuristic's) is met.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="evaluate this saved model instead of training one")
    parser.add_argument("--env-id", default="InferMax-Tiny-v0")
    parser.add_argument("--env-kwargs", default="{}")
    parser.add_argument("--algo", default="maskable_ppo")
    parser.add_argument("--timesteps", type=int, default=150_000)
    parser.add_argument("--n-envs", type=int, default=1)
    parser.add_argument("--imitation-episodes", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--objective", default="latency", choices=("latency", "gpu_time"))
    parser.add_argument("--heuristics", default="all")
    parser.add_argument("--solver-time-limit", type=float, default=8.0)
    parser.add_argument("--no-optimum", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/agent_gap")
    args = parser.parse_args(argv)

    common = ["--env-kwargs", args.env_kwargs, "--eval-episodes", str(args.episodes), "--objective", args.objective,
              "--heuristics", args.heuristics, "--solver-time-limit", str(args.solver_time_limit),
              "--output-dir", args.output_dir]
    if args.no_optimum:
        common.append("--no-optimum")
    if args.model:
        command = ["--eval-only", args.model, "--env-id", args.env_id, *common]
    else:
        command = ["--env-id", args.env_id, "--algo", args.algo, "--timesteps", str(args.timesteps),
                   "--n-envs", str(args.n_envs), "--seed", str(args.seed),
                   "--imitation-episodes", str(args.imitation_episodes), *common]
    print("train.py " + " ".join(command))
    code = train.main(command)
    if code:
        return code
    run_dir = max(Path(args.output_dir).iterdir(), key=lambda p: p.stat().st_mtime)
    print_headline(run_dir / "gap_table.csv", args.objective)
    return 0


def print_headline(table: Path, objective: str) -> None:
    """Agent against the best heuristic, from a run's gap table."""
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    agents = [r for r in rows if r["kind"] == "agent"]
    heuristics = [r for r in rows if r["kind"] == "heuristic"]
    if "mean_gap" in rows[0]:
        best = min(heuristics, key=lambda r: float(r["mean_gap"]))
        for row in agents + [best]:
            print(f"{row['policy']:>32}: mean gap {100 * float(row['mean_gap']):6.2f}%  worst gap "
                  f"{100 * float(row['worst_gap']):6.2f}%  (to the solver's bound: "
                  f"{100 * float(row['mean_gap_to_bound']):.2f}%)")
        agent_gap, best_gap = float(agents[0]["mean_gap"]), float(best["mean_gap"])
        met = agent_gap < 0.05 and agent_gap <= best_gap / 2
        print(f"target (agent mean gap < 5% and <= half of {best['policy']}'s {100 * best_gap:.2f}%): "
              f"{'met' if met else 'NOT met'}")
    else:
        for row in agents + heuristics:
            print(f"{row['policy']:>32}: mean {objective} {float(row[f'mean_{objective}']):.4g}, mean gap to the best "
                  f"heuristic per instance {100 * float(row['mean_gap_vs_best_heuristic']):+.2f}%")


if __name__ == "__main__":
    sys.exit(main())
