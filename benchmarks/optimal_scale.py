"""How far the CP-SAT optimum scales, how far the heuristics are from it, and what never preempting costs.

Five studies on Tiny instances (``infermax_env.instances.tiny_setting``: M = 48, C = 32, offline):

1. ``scale``: solve time to proven optimality against the number of requests (``--seeds`` seeded instances per
   size and objective, seeds 0, 1, ...), with status and gap at the time limit; prints the largest size whose
   instances are all proven within the limit and the bound gaps at twice and four times that size.
2. ``heuristics``: the gap ``(heuristic - optimum) / optimum`` of every registered heuristic, mean and worst over
   ``--instances`` seeded instances, for both objectives. Instances whose optimum is not proven are counted and
   their gap is taken against the best schedule found (a lower estimate of the true gap).
3. ``eviction``: the optimum with eviction allowed versus forbidden (``allow_eviction=False``), same instances,
   over those where both are proven optimal.
4. ``models``: the model before and after issue 22 (``old``: no dominance rules, no bound cuts or starting bound, no
   fixed-charge bound; ``new``: all of them, the default), per size: proofs within the limit and mean/worst bound
   gap. ``--variants`` runs a subset; ``--previous`` adds the rows of an earlier run to the summary (labelled
   ``<model> (previous)``).
5. ``terms``: which cost terms make the proof hard. The ``scale`` instances solved under the paper's linear model
   with its terms switched on one group at a time (:data:`TERM_VARIANTS`: the per-batch intercept alone, then the
   per-token term, then the prefill or the decode attention kernel, then every term), reporting how many are proven
   and the mean gap per variant.

Usage::

    python benchmarks/optimal_scale.py scale --sizes 4 5 6 7 8 14 28 --time-limit 60 [--seeds 3]
    python benchmarks/optimal_scale.py heuristics --instances 50 --requests 4 8 --time-limit 60
    python benchmarks/optimal_scale.py eviction --instances 50 --requests 4 8 --time-limit 60
    python benchmarks/optimal_scale.py terms --sizes 6 --seeds 4 --time-limit 30 --objectives latency
    python benchmarks/optimal_scale.py models --sizes 6 10 --seeds 8 --time-limit 60 --json runs/models.json
    python benchmarks/optimal_scale.py models --variants new --workers 8 --previous runs/models.json ...

Add ``--json PATH`` to save the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from baselines import SCHEDULERS
from baselines.optimal import solve_optimal
from infermax_env import OBJECTIVES, LinearCoefficients, LinearCostModel, Simulator, objective_value
from infermax_env.instances import TINY_ENGINE, tiny_setting

TERM_VARIANTS = {
    # variant: the LinearCoefficients fields kept at the paper's value (the others are zeroed)
    "intercept": ("b_o",),
    "+tokens": ("b_o", "a_o"),
    "+prefill kernel": ("b_o", "a_o", "b_p"),
    "+decode kernel": ("b_o", "a_o", "b_d"),
    "both kernels": ("b_o", "a_o", "b_p", "b_d"),
    "full": tuple(f.name for f in fields(LinearCoefficients)),
}


MODEL_VARIANTS = {"old": {"dominance_rules": False, "bound_cuts": False, "fixed_charge_share": 0.0},
                  "new": {}}  # new: solve_optimal's defaults


def _solve_scale_instance(objective: str, n: int, seed: int, time_limit: float, workers: int,
                          cost_model: LinearCostModel | None = None, **options) -> dict:
    """Solve the Tiny instance of ``n`` requests from ``seed`` (CP-SAT seed ``seed`` too) and return its row;
    ``options`` go to :func:`solve_optimal`."""
    result = solve_optimal(tiny_setting(n).sample(seed), cost_model, TINY_ENGINE, objective, time_limit=time_limit,
                           workers=workers, seed=seed, **options)
    return {"objective": objective, "n": n, "seed": seed, "status": result.status, "time_s": result.wall_time,
            "gap": result.gap, "objective_s": result.objective, "bound_s": result.best_bound,
            "horizon": result.num_iterations_bound, "iterations": len(result.decisions), "workers": workers,
            "load_average_1min": os.getloadavg()[0]}


def scale_study(sizes: list[int], time_limit: float, seeds: int, workers: int, objectives: list[str]) -> list[dict]:
    rows = []
    for objective in objectives:
        for n in sizes:
            for seed in range(seeds):
                row = _solve_scale_instance(objective, n, seed, time_limit, workers)
                rows.append(row)
                print(f"{objective:9s} n={n:3d} seed {seed} {row['status']:8s} time {row['time_s']:7.2f} s  gap "
                      f"{row['gap']:7.2%}  objective {row['objective_s']:.6f} s  bound {row['bound_s']:.6f} s  "
                      f"horizon {row['horizon']}  iterations {row['iterations']}", flush=True)
    for objective in objectives:
        mine = [r for r in rows if r["objective"] == objective]
        proven = [n for n in sizes if all(r["status"] == "OPTIMAL" for r in mine if r["n"] == n)]
        largest = max(proven, default=None)
        print(f"{objective}: largest n with all {seeds} instance(s) proven optimal within {time_limit:g} s: {largest}")
        if largest:
            for factor in (2, 4):
                gaps = [r["gap"] for r in mine if r["n"] == factor * largest]
                gap = f"mean {np.mean(gaps):.2%}, worst {np.max(gaps):.2%}" if gaps else "not run (add it to --sizes)"
                print(f"  bound gap at {factor}x = {factor * largest} requests: {gap}")
    return rows


def model_study(sizes: list[int], time_limit: float, seeds: int, workers: int, objectives: list[str],
                json_path: Path | None = None, variants: list[str] | None = None,
                previous: list[dict] = ()) -> list[dict]:
    """Each instance under each of ``variants`` (default: all of :data:`MODEL_VARIANTS`); rows are saved to
    ``json_path`` as they come. ``previous``: rows of an earlier run, summarised beside these as
    ``<model> (previous)``."""
    variants = list(MODEL_VARIANTS) if variants is None else variants
    rows = []
    for n in sizes:
        for objective in objectives:
            for seed in range(seeds):
                for variant in variants:
                    row = {"model": variant, **_solve_scale_instance(objective, n, seed, time_limit, workers,
                                                                     **MODEL_VARIANTS[variant])}
                    rows.append(row)
                    print(f"{variant} {objective:9s} n={n:3d} seed {seed} {row['status']:8s} time "
                          f"{row['time_s']:7.2f} s  gap {row['gap']:7.2%}  load {row['load_average_1min']:.1f}",
                          flush=True)
                    if json_path is not None:
                        json_path.write_text(json.dumps(rows, indent=2))
    earlier = [{**row, "model": f"{row['model']} (previous)"} for row in previous]
    labels = [f"{v} (previous)" for v in dict.fromkeys(r["model"] for r in previous)] + variants
    print(f"\nproofs within {time_limit:g} s and bound gaps, old model vs new ({workers} workers here)")
    for objective in objectives:
        for n in sizes:
            for label in labels:
                mine = [r for r in rows + earlier if (r["objective"], r["n"], r["model"]) == (objective, n, label)]
                if not mine:
                    continue
                gaps = [r["gap"] for r in mine]
                print(f"  {objective:9s} n={n:3d} {label:15s}: proven {sum(r['status'] == 'OPTIMAL' for r in mine)}/"
                      f"{len(mine)}  gap mean {np.mean(gaps):7.2%} worst {np.max(gaps):7.2%}  mean time "
                      f"{np.mean([r['time_s'] for r in mine]):6.1f} s")
    return rows


def _sample(instances: int, requests: tuple[int, int], description: str):
    """The seeded instances, behind a progress bar (each may take up to the time limit, twice for eviction)."""
    setting = tiny_setting(requests)
    return tqdm([(seed, setting.sample(seed)) for seed in range(instances)], desc=description, leave=False)


def heuristic_study(instances: int, requests: tuple[int, int], time_limit: float, workers: int,
                    objectives: list[str]) -> list[dict]:
    rows = []
    setting = tiny_setting(requests)
    for objective in objectives:
        gaps: dict[str, list[float]] = {name: [] for name in SCHEDULERS}
        unproven = 0
        for seed, workload in _sample(instances, requests, f"heuristics, {objective}"):
            result = solve_optimal(workload, setting.cost_model, setting.engine, objective, time_limit=time_limit,
                                   workers=workers, seed=seed)
            unproven += result.status != "OPTIMAL"
            best = result.replayed_objective
            for name in gaps:
                metrics = Simulator(workload, setting.cost_model, setting.engine).run(SCHEDULERS[name]())
                gaps[name].append((objective_value(metrics, objective) - best) / best)
        print(f"\n{objective}: heuristic gap to the optimum over {instances} Tiny instances of {requests[0]}-"
              f"{requests[1]} requests ({unproven} not proven optimal within {time_limit:g} s)")
        for name, values in sorted(gaps.items(), key=lambda item: np.mean(item[1])):
            rows.append({"objective": objective, "heuristic": name, "mean_gap": float(np.mean(values)),
                         "worst_gap": float(np.max(values)), "unproven": unproven})
            print(f"  {name:18s} mean {np.mean(values):8.2%}  worst {np.max(values):8.2%}")
    return rows


def eviction_study(instances: int, requests: tuple[int, int], time_limit: float, workers: int,
                   objectives: list[str]) -> list[dict]:
    """Cost of never preempting, ``(optimum without eviction - optimum with) / optimum with``, over the instances
    where both solves are proven optimal (an unproven solve would measure the time limit, not preemption)."""
    rows = []
    setting = tiny_setting(requests)
    for objective in objectives:
        costs, evicting = [], 0
        for seed, workload in _sample(instances, requests, f"eviction, {objective}"):
            free = solve_optimal(workload, setting.cost_model, setting.engine, objective, time_limit=time_limit,
                                 workers=workers, seed=seed)
            fixed = solve_optimal(workload, setting.cost_model, setting.engine, objective, time_limit=time_limit,
                                  workers=workers, seed=seed, allow_eviction=False)
            if free.status == fixed.status == "OPTIMAL":
                evicting += free.replayed["evictions"] > 0
                costs.append((fixed.objective - free.objective) / free.objective)
        row = {"objective": objective, "instances": instances, "both_proven": len(costs),
               "mean_cost_of_no_eviction": float(np.mean(costs)) if costs else math.nan,
               "worst_cost_of_no_eviction": float(np.max(costs)) if costs else math.nan,
               "instances_where_eviction_helps": int(sum(c > 1e-9 for c in costs)), "optima_that_evict": evicting}
        rows.append(row)
        print(f"{objective}: over the {len(costs)}/{instances} instances with both optima proven within "
              f"{time_limit:g} s, never preempting costs {row['mean_cost_of_no_eviction']:.2%} on average and "
              f"{row['worst_cost_of_no_eviction']:.2%} at worst; eviction helps on "
              f"{row['instances_where_eviction_helps']}, {evicting} optima evict")
    return rows


def _cost_model_with(terms: tuple[str, ...]) -> LinearCostModel:
    """The paper's linear model with every coefficient outside ``terms`` set to zero."""
    paper = LinearCoefficients()
    return LinearCostModel(replace(paper, **{f.name: 0.0 for f in fields(paper) if f.name not in terms}))


def cost_term_study(sizes: list[int], time_limit: float, seeds: int, workers: int, objectives: list[str]
                    ) -> list[dict]:
    rows = []
    for objective in objectives:
        for variant, terms in TERM_VARIANTS.items():
            cost_model = _cost_model_with(terms)
            for n in sizes:
                for seed in tqdm(range(seeds), desc=f"{objective}, {variant}, n={n}", leave=False):
                    row = _solve_scale_instance(objective, n, seed, time_limit, workers, cost_model)
                    rows.append({"variant": variant, **row})
        print(f"\n{objective}: proofs within {time_limit:g} s by cost terms ({seeds} instance(s) per size)")
        for variant in TERM_VARIANTS:
            for n in sizes:
                mine = [r for r in rows if r["objective"] == objective and r["variant"] == variant and r["n"] == n]
                proven = sum(r["status"] == "OPTIMAL" for r in mine)
                print(f"  {variant:16s} n={n:3d}  proven {proven}/{len(mine)}  mean gap "
                      f"{np.mean([r['gap'] for r in mine]):7.2%}  worst {np.max([r['gap'] for r in mine]):7.2%}  "
                      f"mean time {np.mean([r['time_s'] for r in mine]):6.1f} s  "
                      f"mean horizon {np.mean([r['horizon'] for r in mine]):5.1f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=("scale", "heuristics", "eviction", "terms", "models"),
                        help="which study to run (see the module docstring)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 16, 20],
                        help="scale, terms, models: numbers of requests")
    parser.add_argument("--instances", type=int, default=50, help="heuristics, eviction: seeded instances")
    parser.add_argument("--requests", type=int, nargs=2, default=[4, 12], metavar=("LOW", "HIGH"),
                        help="heuristics, eviction: range of the number of requests per instance")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve_optimal call")
    parser.add_argument("--workers", type=int, default=2, help="CP-SAT workers")
    parser.add_argument("--seeds", type=int, default=1,
                        help="scale, terms, models: instances per size (seeds 0..N-1)")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES),
                        help="objectives to solve for")
    parser.add_argument("--json", type=Path, help="save the rows to this file (models: after every row)")
    parser.add_argument("--variants", nargs="+", choices=tuple(MODEL_VARIANTS), help="models: variants to run "
                        "(default all)")
    parser.add_argument("--previous", type=Path, help="models: JSON rows of an earlier models run to summarise beside "
                        "this one")
    args = parser.parse_args(argv)
    if args.study == "models":
        previous = json.loads(args.previous.read_text()) if args.previous else []
        rows = model_study(args.sizes, args.time_limit, args.seeds, args.workers, args.objectives, args.json,
                           args.variants, previous)
    elif args.study == "scale":
        rows = scale_study(args.sizes, args.time_limit, args.seeds, args.workers, args.objectives)
    elif args.study == "terms":
        rows = cost_term_study(args.sizes, args.time_limit, args.seeds, args.workers, args.objectives)
    elif args.study == "heuristics":
        rows = heuristic_study(args.instances, tuple(args.requests), args.time_limit, args.workers,
                               args.objectives)
    else:
        rows = eviction_study(args.instances, tuple(args.requests), args.time_limit, args.workers,
                              args.objectives)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=lambda x: None if isinstance(x, float)
                                        and not math.isfinite(x) else x))


if __name__ == "__main__":
    main()
