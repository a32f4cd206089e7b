"""The optional constraints of the CP-SAT model (dominance rules, bound cuts) never change an optimum: each flag
alone and all together, against the rule-free model, the exhaustive search, and solve_optimal's proven optima."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ortools.sat.python import cp_model

from baselines import SCHEDULERS
from baselines.optimal import (IntegerLinearCost, ScheduleInstance, ScheduleModel, best_heuristic_schedule,
                               iteration_bound, normalize_schedule, solve_optimal)
from baselines.optimal.bounds import bound_cuts
from baselines.optimal.model import full_continuations_hold
from baselines.optimal.solve import serial_schedule
from infermax_env import (EngineConfig, LinearCoefficients, LinearCostModel, Simulator, Workload, compute_metrics,
                          objective_value)
from infermax_env.instances import tiny_setting
from optimal_oracle import exhaustive_optimum

COST = LinearCostModel()
INTEGER_COST = IntegerLinearCost.from_cost_model(COST)
FLAGS = ["evict_after_emission", "full_continuations", "bound_cuts", "all"]

# (prompts, outputs, M, C): eviction pays in the first four; prompts longer than C are chunked and continued in the
# rest.
CASES = [((2, 1, 2), (2, 3, 2), 3, 3), ((4, 2, 1), (3, 3, 2), 7, 5), ((2, 2, 3), (3, 3, 1), 6, 4),
         ((2, 3), (3, 3), 6, 4), ((5, 3), (2, 2), 7, 3), ((4, 4, 2), (1, 2, 2), 8, 3), ((6, 1), (2, 3), 7, 2),
         ((3, 5), (3, 1), 6, 2)]


def _instance(workload: Workload, engine: EngineConfig) -> ScheduleInstance:
    return ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                            engine.kv_capacity, engine.token_budget, engine.max_batch_size)


def _sound_horizon(workload: Workload, engine: EngineConfig, objective: str) -> int:
    best = best_heuristic_schedule(workload, COST, engine, objective)
    decisions = best[1] if best is not None else serial_schedule(workload, COST, engine)
    sim = Simulator(workload, COST, engine)
    unfinished, total = [], 0
    for decision in decisions:
        unfinished.append(1 if objective == "gpu_time" else len(sim.waiting) + len(sim.resident))
        total += unfinished[-1] * INTEGER_COST.batch_time(sim.step(decision).batch)
    return iteration_bound(_instance(workload, engine), INTEGER_COST, objective, total)


def _model_optimum(instance: ScheduleInstance, objective: str, horizon: int, **flags) -> int:
    schedule = ScheduleModel(instance, INTEGER_COST, objective, horizon, **flags)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 60
    solver.parameters.num_workers = 2
    assert solver.solve(schedule.model) == cp_model.OPTIMAL
    return round(solver.objective_value)


SLOW_CASES = {2, 5, 6, 7}


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if i in SLOW_CASES else c
                                  for i, c in enumerate(CASES)], ids=str)
def test_each_rule_keeps_the_exhaustive_optimum(case, objective):
    prompts, outputs, kv_capacity, budget = case
    workload = Workload.from_lists(prompts, outputs)
    engine = EngineConfig(kv_capacity=kv_capacity, token_budget=budget, max_batch_size=8)
    instance = _instance(workload, engine)
    assert full_continuations_hold(INTEGER_COST, instance)
    horizon = _sound_horizon(workload, engine, objective)
    plain = _model_optimum(instance, objective, horizon)
    exhaustive = exhaustive_optimum(workload, engine, objective)
    assert plain * INTEGER_COST.unit_seconds == pytest.approx(exhaustive, rel=1e-5)
    cuts = bound_cuts(instance, INTEGER_COST, objective)
    for flag in FLAGS:
        options = {"evict_after_emission": flag in ("evict_after_emission", "all"),
                   "full_continuations": flag in ("full_continuations", "all"),
                   "bound_cuts": cuts if flag in ("bound_cuts", "all") else None}
        assert _model_optimum(instance, objective, horizon, **options) == plain, flag


@pytest.mark.slow
def test_rules_keep_the_exhaustive_optimum_on_random_instances():
    """solve_optimal with every rule and cut: its schedule is the exhaustive optimum where proven, its bound below it
    everywhere (3-request instances with C = 2 can stay unproven for GPU time within 30 s, with or without rules)."""
    rng = np.random.default_rng(7)
    proven = 0
    for _ in range(6):
        n = int(rng.integers(2, 4))
        prompts, outputs = rng.integers(1, 6, n), rng.integers(1, 4, n)
        peaks = prompts + outputs - 1
        engine = EngineConfig(kv_capacity=int(rng.integers(peaks.max(), peaks.sum() + 1)),
                              token_budget=int(rng.integers(2, 4)), max_batch_size=8)
        workload = Workload.from_lists(prompts.tolist(), outputs.tolist())
        for objective in ("latency", "gpu_time"):
            exhaustive = exhaustive_optimum(workload, engine, objective)
            result = solve_optimal(workload, COST, engine, objective, time_limit=30)
            assert result.best_bound <= exhaustive + 2 * result.rounding_bound
            if result.status == "OPTIMAL":
                proven += 1
                assert result.replayed_objective == pytest.approx(exhaustive, abs=2 * result.rounding_bound + 1e-12)
    assert proven >= 8


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_rules_keep_the_proven_optima_of_the_old_model(objective):
    """Tiny instances the rule-free model proves: the model with every rule and cut proves the same objective."""
    compared = 0
    for n, seed in [(3, 0), (3, 1), (4, 0)]:
        workload = tiny_setting(n).sample(seed)
        old = solve_optimal(workload, objective=objective, time_limit=30, seed=seed, dominance_rules=False,
                            bound_cuts=False)
        new = solve_optimal(workload, objective=objective, time_limit=30, seed=seed)
        if old.status == new.status == "OPTIMAL":
            compared += 1
            assert new.objective == pytest.approx(old.objective, rel=1e-12)
        assert new.best_bound <= old.objective * (1 + 1e-12) and old.best_bound <= new.objective * (1 + 1e-12)
    assert compared >= 2


def test_continuation_rule_is_checked_against_the_coefficients():
    tiny = ScheduleInstance((14, 11, 9), (6, 8, 5), 48, 32, 8)
    assert full_continuations_hold(INTEGER_COST, tiny)
    # Long prompts: the multi-kernel attention excess of moving a token outgrows the cached-token saving.
    assert not full_continuations_hold(INTEGER_COST, ScheduleInstance((1000,), (500,), 2000, 512, 8))
    # No cached-token charge: moving a token is never strictly cheaper.
    free_cache = IntegerLinearCost.from_cost_model(LinearCostModel(replace(LinearCoefficients(), m_p=0.0)))
    assert not full_continuations_hold(free_cache, tiny)
    with_rule = ScheduleModel(tiny, free_cache, "gpu_time", 12, full_continuations=True)
    without = ScheduleModel(tiny, free_cache, "gpu_time", 12)
    assert len(with_rule.model.proto.constraints) == len(without.model.proto.constraints)


def test_bound_cuts_skip_truncated_models():
    instance = ScheduleInstance((5, 6, 7), (3, 2, 4), 48, 32, 8)
    cuts = bound_cuts(instance, INTEGER_COST, "latency")
    truncated = ScheduleModel(instance, INTEGER_COST, "latency", 3, truncated_bound=10, bound_cuts=cuts)
    plain = ScheduleModel(instance, INTEGER_COST, "latency", 3, truncated_bound=10)
    assert len(truncated.model.proto.constraints) == len(plain.model.proto.constraints)



def _price(workload: Workload, engine: EngineConfig, decisions, objective: str) -> float:
    sim = Simulator(workload, COST, engine)
    for decision in decisions:
        sim.step(decision)
    assert sim.done
    return objective_value(compute_metrics(sim), objective)


def test_normalized_heuristic_schedules_satisfy_the_rules_and_cost_no_more():
    """Every heuristic's schedule on Tiny instances (chunked prompts, evictions), rewritten by normalize_schedule:
    it replays, costs no more for either objective, and satisfies the model with both rules."""
    changed = 0
    for seed in range(3):
        workload = tiny_setting(6).sample(seed)
        engine = EngineConfig(kv_capacity=30, token_budget=12, max_batch_size=8)
        instance = _instance(workload, engine)
        for name, cls in SCHEDULERS.items():
            sim = Simulator(workload, COST, engine)
            try:
                sim.run(cls())
            except RuntimeError:
                continue
            decisions = list(sim.log.decisions)
            normalized = normalize_schedule(workload, COST, engine, decisions)
            changed += len(normalized) != len(decisions) or any(
                a.run_tokens.tolist() != b.run_tokens.tolist() or a.evict_ids.tolist() != b.evict_ids.tolist()
                for a, b in zip(normalized, decisions))
            for objective in ("latency", "gpu_time"):
                assert _price(workload, engine, normalized, objective) <= _price(workload, engine, decisions,
                                                                                  objective) * (1 + 1e-12)
            model = ScheduleModel(instance, INTEGER_COST, "gpu_time", len(normalized), evict_after_emission=True,
                                  full_continuations=True)
            model.fix_decisions(normalized)
            solver = cp_model.CpSolver()
            solver.parameters.max_time_in_seconds = 20
            assert solver.solve(model.model) in (cp_model.OPTIMAL, cp_model.FEASIBLE), (seed, name)
    assert changed > 0
