"""Compute the benchmark suite's stored optima and bounds, and write the leaderboard (docs/leaderboard.md).

``compute`` solves every instance of the chosen families (``baselines.optimal.suite.FAMILIES``) for both
objectives and stores the best schedule and bound found, keeping a stored entry when it is better (``settings`` and
``wall_s`` describe the run that found the stored schedule, ``runs`` every run merged into the entry); instances
proven or already solved with at least the requested time limit are skipped (``--rerun``: solved again unless
proven, e.g. with a new method), so a run can be resumed or extended. Tiny
families run :func:`solve_optimal`; trace families (too large for CP-SAT) store the best heuristic's schedule and
the closed-form bound of :func:`optimum_lower_bound`. ``bounds`` raises every stored bound to the current closed form
(no search; for after the bound improves). ``leaderboard`` evaluates every registered heuristic on every
stored family and writes the certified gap brackets.

Usage::

    python benchmarks/optimal_suite.py compute --families tiny-6 tiny-10 --time-limit 60 --workers 8 [--rerun]
    python benchmarks/optimal_suite.py bounds
    python benchmarks/optimal_suite.py leaderboard --out docs/leaderboard.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import ortools

from baselines import SCHEDULERS
from baselines.variants import ReservationExceededError
from infermax_env import LinearCostModel
from baselines.optimal import OBJECTIVES, best_heuristic_schedule, optimum_lower_bound, solve_optimal
from baselines.optimal.solve import FIXED_CHARGE_SHARE
from baselines.optimal.suite import (FAMILIES, encode_schedule, evaluate, load_family, load_records, save_records,
                                     summarize)


def _solve(family: str, seed: int, objective: str, time_limit: float, workers: int) -> dict:
    spec = FAMILIES[family]
    workload = spec.workload(seed)
    started = time.perf_counter()
    closed = optimum_lower_bound(workload, engine=spec.engine, objective=objective)
    settings = {"time_limit_s": time_limit, "workers": workers, "seed": seed, "ortools": ortools.__version__,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)"}
    if spec.source == "tiny":
        result = solve_optimal(workload, engine=spec.engine, objective=objective, time_limit=time_limit,
                               workers=workers, seed=seed)
        settings.update(method="solve_optimal", dominance_rules=True, bound_cuts=True,
                        fixed_charge_share=FIXED_CHARGE_SHARE)
        bound = max(closed.bound, result.best_bound - 2 * result.rounding_bound)
        record = {"best_known_s": result.replayed_objective, "bound_s": bound, "status": result.status,
                  "source": result.source, "schedule": encode_schedule(result.decisions)}
    else:
        name, decisions, value = best_heuristic_schedule(workload, LinearCostModel(), spec.engine, objective)
        settings.update(method="best heuristic + closed-form bound", time_limit_s=0)
        record = {"best_known_s": value, "bound_s": closed.bound, "status": "FEASIBLE", "source": name,
                  "schedule": encode_schedule(decisions)}
    record.update(settings=settings, wall_s=time.perf_counter() - started)
    return {"seed": seed, "prompts": workload.prompt_len.tolist(), "outputs": workload.output_len.tolist(),
            "engine": asdict(spec.engine), "record": record}


def _merge(old: dict | None, new: dict) -> dict:
    """The better schedule of the two and the larger bound."""
    if old is None:
        return new
    best = new if new["best_known_s"] < old["best_known_s"] else old
    merged = dict(best, bound_s=max(old["bound_s"], new["bound_s"]))
    proven = any(r["status"] == "OPTIMAL" and r["best_known_s"] <= best["best_known_s"] * (1 + 1e-12)
                 for r in (old, new))
    merged["status"] = "OPTIMAL" if proven else "FEASIBLE"
    merged["runs"] = old.get("runs", [{"settings": old["settings"], "wall_s": old["wall_s"]}]) + [
        {"settings": new["settings"], "wall_s": new["wall_s"]}]
    return merged


def compute(families: list[str], time_limit: float, workers: int, objectives: list[str], rerun: bool = False) -> None:
    for family in families:
        data = load_records(family)
        by_seed = {item["seed"]: item for item in data["instances"]}
        for seed in range(FAMILIES[family].size):
            for objective in objectives:
                item = by_seed.get(seed)
                old = item["objectives"].get(objective) if item else None
                if old is not None and (old["status"] == "OPTIMAL"
                                        or (old["settings"]["time_limit_s"] >= time_limit and not rerun)):
                    continue
                solved = _solve(family, seed, objective, time_limit, workers)
                if item is None:
                    item = {key: solved[key] for key in ("seed", "prompts", "outputs", "engine")}
                    item["objectives"] = {}
                    by_seed[seed] = item
                item["objectives"][objective] = _merge(old, solved["record"])
                record = item["objectives"][objective]
                print(f"{family} seed {seed} {objective:8s} {record['status']:8s} best {record['best_known_s']:.6f} s "
                      f"bound {record['bound_s']:.6f} s ({record['wall_s']:.1f} s)", flush=True)
                data["instances"] = [by_seed[s] for s in sorted(by_seed)]
                save_records(family, data)


def refresh_bounds(families: list[str], objectives: list[str]) -> None:
    """Raise each stored bound to the current closed-form bound where that is larger, recording it in ``runs``."""
    for family in families:
        data = load_records(family)
        spec = FAMILIES[family]
        for item in data["instances"]:
            for objective in objectives:
                record = item["objectives"].get(objective)
                if record is None:
                    continue
                started = time.perf_counter()
                closed = optimum_lower_bound(spec.workload(item["seed"]), engine=spec.engine, objective=objective)
                if closed.bound <= record["bound_s"]:
                    continue
                runs = record.get("runs", [{"settings": record["settings"], "wall_s": record["wall_s"]}])
                record["runs"] = runs + [{"settings": {"method": "closed-form bound", "time_limit_s": 0},
                                          "wall_s": time.perf_counter() - started}]
                print(f"{family} seed {item['seed']} {objective:8s} bound {record['bound_s']:.6f} -> "
                      f"{closed.bound:.6f} s", flush=True)
                record["bound_s"] = closed.bound
        save_records(family, data)


def leaderboard(out: Path) -> None:
    lines = ["# Leaderboard: certified gaps on the benchmark suite", "",
             "Written by `python benchmarks/optimal_suite.py leaderboard`. For each family of "
             "`baselines/optimal/suite.py` and objective: how many stored instances have a proven optimum, the stored "
             "best-known schedules' own bound gap, and per heuristic the mean of the two ends of the certified bracket "
             "of its gap to the optimum: `best` = value / best-known - 1 (the gap is at least this) and `bound` = "
             "value / bound - 1 (at most this). Oracle heuristics (`srpt`, `sort_output`, `*_noe`) read true output "
             "lengths. Stored entries, their solver settings and times are in `baselines/optimal/suite_data/`. "
             "No agent is listed: the shipped checkpoint (`agents/checkpoints/residual_reservation_tuned`) is "
             "trained for InferMax-v0's engine, not these families'; `evaluate(family, policy, objective, env=...)` "
             "scores any "
             "env policy whose env has the family's engine.", ""]
    for family, spec in FAMILIES.items():
        for objective in OBJECTIVES:
            entries = load_family(family, objective)
            if not entries:
                continue
            proven = sum(e.proven for e in entries)
            own_gap = sum(1 - e.bound / e.best_known for e in entries) / len(entries)
            lines += [f"## {family}, {objective}", "", f"{spec.description}. {len(entries)} instances, {proven} "
                      f"proven; best-known schedules within {own_gap:.2%} of their bound on average.", "",
                      "| heuristic | best | bound |", "|---|---|---|"]
            rows = []
            for name in SCHEDULERS:
                try:
                    summary = summarize(evaluate(family, name, objective))
                except ReservationExceededError:  # a fixed reservation that would have to evict
                    rows.append((float("inf"), f"| {name} | cannot serve (outgrows its reservation) | |"))
                    continue
                rows.append((summary["gap_to_best_known"], f"| {name} | {summary['gap_to_best_known']:.2%} | "
                                                            f"{summary['gap_to_bound']:.2%} |"))
            lines += [row for _, row in sorted(rows)] + [""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("compute", "bounds", "leaderboard"), help="what to do")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES),
                        help="compute, bounds: families")
    parser.add_argument("--time-limit", type=float, default=60.0, help="compute: seconds per solve_optimal call")
    parser.add_argument("--workers", type=int, default=2, help="compute: CP-SAT workers")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES),
                        help="compute, bounds: objectives")
    parser.add_argument("--rerun", action="store_true", help="compute: solve again every instance not proven, "
                        "keeping the better entry")
    parser.add_argument("--out", type=Path, default=Path("docs/leaderboard.md"), help="leaderboard: output file")
    args = parser.parse_args(argv)
    if args.command == "compute":
        compute(args.families, args.time_limit, args.workers, args.objectives, args.rerun)
    elif args.command == "bounds":
        refresh_bounds(args.families, args.objectives)
    else:
        leaderboard(args.out)


if __name__ == "__main__":
    main()
