"""Soundness of the lower bounds (baselines.optimal.bounds): never above an optimum proven by exhaustive search or by
CP-SAT, including instances where eviction pays and cost models whose prefill constant is below the decode one."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest

from baselines.optimal import (IntegerLinearCost, ScheduleInstance, TermBounds, best_heuristic_schedule,
                               closed_form_terms, combine, fixed_charge_bound, iteration_bound, lower_bound,
                               optimum_lower_bound, prefix_bounds, solve_optimal, term_bounds)
from infermax_env import EngineConfig, LinearCoefficients, LinearCostModel, Workload
from infermax_env.instances import TINY_ENGINE, tiny_setting
from optimal_oracle import exhaustive_optimum

COST = LinearCostModel()
# A cost model with the prefill constant below the decode one and a large per-token term (the other branch of the
# bound's per-iteration charge).
SWAPPED = LinearCostModel(replace(LinearCoefficients(), b_p=0.05, b_d=0.3, a_o=0.02))
RELATIVE = 1e-9  # float summation noise


def random_instance(seed: int) -> tuple[Workload, EngineConfig]:
    """1-3 requests, prompts of 1-4, outputs of 1-3, M between the largest request and all of them, C of 2-5."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    prompts, outputs = rng.integers(1, 5, n), rng.integers(1, 4, n)
    peaks = prompts + outputs - 1
    engine = EngineConfig(kv_capacity=int(rng.integers(peaks.max(), peaks.sum() + 1)),
                          token_budget=int(rng.integers(2, 6)), max_batch_size=int(rng.integers(1, 4)))
    return Workload.from_lists(prompts.tolist(), outputs.tolist()), engine


# (prompts, outputs, M, C) where the optimum evicts: forbidding eviction raises it (checked below).
EVICTION_PAYS = [((2, 1, 2), (2, 3, 2), 3, 3), ((4, 2, 1), (3, 3, 2), 7, 5), ((2, 2, 3), (3, 3, 1), 6, 4),
                 ((2, 3), (3, 3), 6, 4)]


def _check_against_exhaustive(workload: Workload, engine: EngineConfig, cost_model: LinearCostModel) -> float:
    worst = 0.0
    for objective in ("latency", "gpu_time"):
        optimum = exhaustive_optimum(workload, engine, objective, cost_model)
        bound = optimum_lower_bound(workload, cost_model, engine, objective)
        assert bound.bound <= optimum * (1 + RELATIVE), (workload.prompt_len, workload.output_len, engine, objective)
        assert bound.bound > 0 and optimum <= bound.best_known * (1 + RELATIVE)
        worst = max(worst, (optimum - bound.bound) / optimum)
    return worst


@pytest.mark.parametrize("case", EVICTION_PAYS, ids=str)
def test_bound_holds_where_eviction_pays(case):
    prompts, outputs, kv_capacity, budget = case
    workload = Workload.from_lists(prompts, outputs)
    engine = EngineConfig(kv_capacity=kv_capacity, token_budget=budget, max_batch_size=8)
    pays = [exhaustive_optimum(workload, engine, o, allow_eviction=False)
            > exhaustive_optimum(workload, engine, o) * (1 + RELATIVE) for o in ("latency", "gpu_time")]
    assert any(pays), "the instance should be one where the optimum evicts"
    _check_against_exhaustive(workload, engine, COST)


@pytest.mark.parametrize("cost_model", [COST, SWAPPED], ids=["paper", "swapped"])
def test_bound_never_exceeds_the_exhaustive_optimum(cost_model):
    for seed in range(4):
        _check_against_exhaustive(*random_instance(seed), cost_model)


@pytest.mark.slow
@pytest.mark.parametrize("cost_model", [COST, SWAPPED], ids=["paper", "swapped"])
def test_bound_never_exceeds_the_exhaustive_optimum_sweep(cost_model):
    """300 random instances per cost model (both objectives each)."""
    worst = max(_check_against_exhaustive(*random_instance(seed), cost_model) for seed in range(300))
    assert worst < 1  # the bound is positive


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_term_bounds_never_exceed_the_exhaustive_optimum(objective):
    """The CP-SAT single-term bounds over the sound horizon, on random instances and where eviction pays."""
    cost = IntegerLinearCost.from_cost_model(COST, round_down=True)
    cases = [random_instance(seed) for seed in range(4)]
    cases += [(Workload.from_lists(p, o), EngineConfig(kv_capacity=m, token_budget=c, max_batch_size=8))
              for p, o, m, c in EVICTION_PAYS[:2]]
    for workload, engine in cases:
        optimum = exhaustive_optimum(workload, engine, objective)
        bound = optimum_lower_bound(workload, COST, engine, objective, term_time_limit=5.0)
        assert bound.bound <= optimum * (1 + RELATIVE)
        instance = ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                                    engine.kv_capacity, engine.token_budget, engine.max_batch_size)
        closed = lower_bound(instance, cost, objective)
        assert bound.bound >= closed * cost.unit_seconds * (1 - RELATIVE)


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_bound_never_exceeds_proven_cp_sat_optima(objective):
    """Tiny instances of 3 and 4 requests proven by the solver (its objective is in rounded costs; the bound in
    rounded-down ones, hence below it)."""
    proven = 0
    for n, seed in [(3, 0), (3, 1), (4, 0), (4, 2)]:
        workload = tiny_setting(n).sample(seed)
        result = solve_optimal(workload, objective=objective, time_limit=30, seed=seed)
        bound = optimum_lower_bound(workload, objective=objective)
        if result.status == "OPTIMAL":
            proven += 1
            assert bound.bound <= result.replayed_objective * (1 + RELATIVE)
        assert bound.bound <= result.objective + result.rounding_bound
    assert proven >= 2


def test_solver_bound_starts_from_the_closed_form_bound():
    workload = tiny_setting(12).sample(0)
    cost = IntegerLinearCost.from_cost_model(COST)
    instance = ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()), 48, 32, 8)
    result = solve_optimal(workload, objective="gpu_time", time_limit=1.0)
    assert result.best_bound >= lower_bound(instance, cost, "gpu_time") * cost.unit_seconds * (1 - RELATIVE)


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_bound_on_large_instances_is_fast_and_below_every_heuristic(objective):
    workload = tiny_setting(256).sample(3)
    started = time.perf_counter()
    bound = optimum_lower_bound(workload, objective=objective)
    assert time.perf_counter() - started < 30  # most of it runs the heuristics
    _, _, best = best_heuristic_schedule(workload, COST, TINY_ENGINE, objective)
    assert 0 < bound.bound <= best and bound.best_known == best and 0 < bound.gap < 1


def test_prefix_bounds_are_monotone_and_cover_the_longest_request():
    instance = ScheduleInstance((14, 11, 9, 6, 2), (6, 8, 5, 5, 1), 48, 32, 8)
    prefix = prefix_bounds(instance)
    assert list(prefix.iterations) == sorted(prefix.iterations)
    assert prefix.iterations[-1] >= max(instance.min_iterations(r) for r in range(5))
    assert prefix.prefill_iterations[-1] >= math.ceil(sum(instance.prompt_len) / 32)


def test_term_bounds_need_a_horizon_that_admits_a_schedule():
    instance = ScheduleInstance((4, 4), (3, 3), 8, 8, 8)
    cost = IntegerLinearCost.from_cost_model(COST)
    with pytest.raises(ValueError, match="finishes within 2 iterations"):
        term_bounds(instance, cost, "gpu_time", 2, time_limit=5.0)
    # Both prompts fill M together; evicting one and recomputing it later finishes in 5 iterations, no fewer.
    terms = term_bounds(instance, cost, "gpu_time", 8, time_limit=5.0)
    assert terms.proven and terms.iterations == 5


def test_bad_term_time_limit_is_a_clear_error():
    with pytest.raises(ValueError, match="term_time_limit"):
        optimum_lower_bound(Workload.from_lists([3], [2]), term_time_limit=float("nan"))


def _instance(workload: Workload, engine: EngineConfig) -> ScheduleInstance:
    return ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                            engine.kv_capacity, engine.token_budget, engine.max_batch_size)


def _fixed_charge_objective_bound(workload: Workload, engine: EngineConfig, cost_model: LinearCostModel,
                                  objective: str) -> tuple[float, float, bool]:
    """(fixed-charge bound + per-request amounts, closed form), in seconds, and whether the fixed-charge optimum
    was proven; priced with coefficients rounded down, over the sound horizon of the best heuristic's schedule."""
    cost = IntegerLinearCost.from_cost_model(cost_model, round_down=True)
    instance = _instance(workload, engine)
    _, _, best = best_heuristic_schedule(workload, cost_model, engine, objective)
    horizon = iteration_bound(instance, cost, objective, math.ceil(best / cost.unit_seconds))
    fixed = fixed_charge_bound(instance, cost, objective, horizon, time.perf_counter() + 10.0)
    assert fixed is not None
    terms = closed_form_terms(instance, cost, objective)
    bound = combine(TermBounds(terms.iterations, terms.prefill_charges, terms.per_request, fixed.bound), cost)
    return bound * cost.unit_seconds, lower_bound(instance, cost, objective) * cost.unit_seconds, fixed.proven


def _check_fixed_charges_against_exhaustive(workload: Workload, engine: EngineConfig,
                                            cost_model: LinearCostModel) -> int:
    """Asserts the fixed-charge bound is sound; returns on how many objectives it is above the closed form."""
    stronger = 0
    for objective in ("latency", "gpu_time"):
        optimum = exhaustive_optimum(workload, engine, objective, cost_model)
        bound, closed, _ = _fixed_charge_objective_bound(workload, engine, cost_model, objective)
        assert closed * (1 - RELATIVE) <= bound <= optimum * (1 + RELATIVE), \
            (workload.prompt_len, workload.output_len, engine, objective, bound, optimum)
        stronger += bound > closed * (1 + 1e-6)
    return stronger


@pytest.mark.parametrize("cost_model", [COST, SWAPPED], ids=["paper", "swapped"])
def test_fixed_charge_bound_never_exceeds_the_exhaustive_optimum(cost_model):
    """Random instances and every instance where eviction pays; the bound must be strictly stronger than the closed
    form somewhere, or the test would not exercise it."""
    cases = [random_instance(seed) for seed in range(4)]
    cases += [(Workload.from_lists(p, o), EngineConfig(kv_capacity=m, token_budget=c, max_batch_size=8))
              for p, o, m, c in EVICTION_PAYS]
    assert sum(_check_fixed_charges_against_exhaustive(*case, cost_model) for case in cases) > 0


@pytest.mark.slow
@pytest.mark.parametrize("cost_model", [COST, SWAPPED], ids=["paper", "swapped"])
def test_fixed_charge_bound_never_exceeds_the_exhaustive_optimum_sweep(cost_model):
    """150 random instances per cost model (both objectives each)."""
    for seed in range(150):
        _check_fixed_charges_against_exhaustive(*random_instance(seed), cost_model)


def test_fixed_charge_bound_is_stronger_than_the_closed_form_on_tiny():
    """Tiny n=3 seed 0, latency: the fixed-charge optimum is proven and lifts the bound by over 20%, still below the
    solver's proven optimum."""
    workload = tiny_setting(3).sample(0)
    bound, closed, proven = _fixed_charge_objective_bound(workload, TINY_ENGINE, COST, "latency")
    assert proven and bound > closed * 1.2
    result = solve_optimal(workload, objective="latency", time_limit=30, seed=0)
    assert result.status == "OPTIMAL" and bound <= result.replayed_objective * (1 + RELATIVE)


def test_bad_fixed_charge_share_is_a_clear_error():
    with pytest.raises(ValueError, match="fixed_charge_share"):
        solve_optimal(Workload.from_lists([3], [2]), time_limit=1, fixed_charge_share=1.0)
