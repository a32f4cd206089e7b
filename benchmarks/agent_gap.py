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
the run's ``gap_table.csv``: for the agent and the best heuristic, both ends of the gap to the optimum (to the
solver's best known schedule and to its bound), the true gap on the proven instances and how many there are,
and whether the target (agent mean gap under 5% and at most half the best heuristic's, on proven instances) is
met. The solver settings (time limit, workers) key the on-disk optimum cache, so the same command prints the
same numbers.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train  # noqa: E402
from infermax_env import OBJECTIVES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=None, help="evaluate this saved model.zip instead of training one")
    parser.add_argument("--env-id", default=None,
                        help="InferMax env id (default InferMax-Tiny-v0, or the saved model's with --model)")
    parser.add_argument("--env-kwargs", default="{}", help="JSON object of env keyword arguments")
    parser.add_argument("--algo", default=None, help="RL algorithm: maskable_ppo (default), ppo or qrdqn")
    parser.add_argument("--timesteps", type=int, default=150_000, help="RL env steps to train for")
    parser.add_argument("--n-envs", type=int, default=1, help="parallel training envs")
    parser.add_argument("--imitation-episodes", type=int, default=1000,
                        help="teacher episodes for the behaviour-cloning warm start (algorithms that have one)")
    parser.add_argument("--episodes", type=int, default=100, help="held-out evaluation instances")
    parser.add_argument("--objective", default=None, choices=OBJECTIVES,
                        help="reward and reported objective (default: the env kwargs', else latency)")
    parser.add_argument("--heuristics", default="all", help="comma-separated baselines.SCHEDULERS names, or 'all'")
    parser.add_argument("--solver-time-limit", type=float, default=8.0, help="CP-SAT seconds per instance")
    parser.add_argument("--solver-workers", type=int, default=2, help="CP-SAT search workers")
    parser.add_argument("--optimum-cache", default="runs/optimum_cache.json",
                        help="JSON file of solved optima, keyed by setting, objective, seed and solver settings")
    parser.add_argument("--no-optimum", action="store_true", help="skip the CP-SAT optimum (large envs)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the model and the training instances")
    parser.add_argument("--output-dir", default="runs/agent_gap", help="a <timestamp>/ run folder is created in it")
    args = parser.parse_args(argv)

    common = ["--env-kwargs", args.env_kwargs, "--eval-episodes", str(args.episodes), "--heuristics",
              args.heuristics, "--solver-time-limit", str(args.solver_time_limit), "--solver-workers",
              str(args.solver_workers), "--optimum-cache", args.optimum_cache, "--output-dir", args.output_dir]
    common += ["--objective", args.objective] if args.objective else []
    common += ["--env-id", args.env_id] if args.env_id else []
    common += ["--no-optimum"] if args.no_optimum else []
    if args.model:
        command = ["--eval-only", args.model, *common]
    else:
        command = ["--timesteps", str(args.timesteps), "--n-envs", str(args.n_envs), "--seed", str(args.seed),
                   "--imitation-episodes", str(args.imitation_episodes), *common]
        command += ["--algo", args.algo] if args.algo else []
    print("train.py " + " ".join(command))
    code = train.main(command)
    if code:
        return code
    run_dir = max(Path(args.output_dir).iterdir(), key=lambda p: p.stat().st_mtime)
    print_headline(run_dir / "gap_table.csv")
    return 0


def print_headline(table: Path) -> None:
    """Agent against the best heuristic, from a run's gap table."""
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    agents = [r for r in rows if r["kind"] == "agent"]
    heuristics = [r for r in rows if r["kind"] == "heuristic"]

    def oracle(row: dict[str, str]) -> str:
        return " [reads true output lengths]" if row["oracle"] == "yes" else ""

    if "gap_to_best_known" in rows[0]:
        best = min(heuristics, key=lambda r: float(r["gap_to_best_known"]))
        for row in agents + [best]:
            proven = float(row["gap_proven"])
            print(f"{row['policy']:>32}: gap to the optimum between {100 * float(row['gap_to_best_known']):.2f}% "
                  f"(to the best known schedule) and {100 * float(row['gap_to_bound']):.2f}% (to the solver's "
                  f"bound); on proven instances {'n/a' if math.isnan(proven) else f'{100 * proven:.2f}%'}; worst "
                  f"{100 * float(row['worst_gap_to_best_known']):.2f}%{oracle(row)}")
        agent_gap, best_gap = float(agents[0]["gap_proven"]), float(best["gap_proven"])
        if math.isnan(agent_gap):
            print("target: not assessed (no proven instance: raise --solver-time-limit)")
            return
        met = agent_gap < 0.05 and agent_gap <= best_gap / 2
        print(f"target on proven instances (agent mean gap < 5% and <= half of {best['policy']}'s "
              f"{100 * best_gap:.2f}%): {'met' if met else 'NOT met'}")
    else:
        for row in agents + heuristics:
            print(f"{row['policy']:>32}: sum of TTLT {float(row['avg_sum_ttlt_s']):.4g} s, total GPU time "
                  f"{float(row['avg_total_gpu_time_s']):.4g} s (averaged over instances), mean gap to the best "
                  f"heuristic per instance {100 * float(row['gap_vs_best_heuristic']):+.2f}%{oracle(row)}")

if __name__ == "__main__":
    sys.exit(main())
