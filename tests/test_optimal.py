"""The CP-SAT optimum (baselines.optimal) against the simulator, an exhaustive search and the heuristics."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from baselines import SCHEDULERS
from ortools.sat.python import cp_model

from baselines.optimal import ReplayScheduler, best_heuristic_schedule, iteration_bound, solve_optimal
from baselines.optimal import (ALL_SUBSET_CUTS_UP_TO, IntegerLinearCost, ModelBuildTimeout, ScheduleInstance,
                               ScheduleModel)
from infermax_env import (Batch, Decision, EngineConfig, InfeasibleDecisionError, LinearCostModel, Simulator, Workload,
                          WorkloadError, objective_value)
from infermax_env.instances import TINY_ENGINE, tiny_setting
from optimal_oracle import exhaustive_optimum

COST = LinearCostModel()


TINY_CASES = [
    # (prompts, outputs, M, C): memory tight enough that eviction or waiting matters
    ((2, 3), (2, 2), 6, 4),
    ((3, 2, 2), (2, 1, 2), 6, 4),
    ((2, 2, 2), (2, 2, 2), 5, 3),  # identical requests: symmetry breaking
    ((4, 1), (1, 3), 5, 3),  # a prompt longer than C is chunked
    ((2, 1, 3, 1), (1, 2, 1, 2), 5, 4),
]


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
@pytest.mark.parametrize("case", TINY_CASES, ids=[str(c[:2]) for c in TINY_CASES])
def test_optimum_equals_exhaustive_search(case, objective):
    prompts, outputs, kv_capacity, budget = case
    workload = Workload.from_lists(prompts, outputs)
    engine = EngineConfig(kv_capacity=kv_capacity, token_budget=budget, max_batch_size=8)
    best = exhaustive_optimum(workload, engine, objective)
    result = solve_optimal(workload, COST, engine, objective, time_limit=20)
    assert result.status == "OPTIMAL" and result.iteration_bound_sound
    assert result.replayed_objective == pytest.approx(best, abs=2 * result.rounding_bound + 1e-12)
    assert result.objective == pytest.approx(best, abs=3 * result.rounding_bound + 1e-12)


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_replay_gives_solver_objective(objective):
    workload = tiny_setting(5).sample(3)
    result = solve_optimal(workload, objective=objective, time_limit=20)
    assert result.status == "OPTIMAL" and result.gap == 0.0
    sim = Simulator(workload, COST, TINY_ENGINE)
    value = objective_value(sim.run(result.scheduler()), objective)
    assert abs(value - result.objective) <= result.rounding_bound
    assert result.rounding_bound < 1e-5 * result.objective
    assert sim.num_iterations == len(result.decisions) <= result.num_iterations_bound
    assert result.best_bound == pytest.approx(result.objective)


def _heuristic_values(workload: Workload, engine: EngineConfig, objective: str) -> dict[str, tuple[float, int]]:
    values = {}
    for name, cls in SCHEDULERS.items():
        metrics = Simulator(workload, COST, engine).run(cls())
        values[name] = (objective_value(metrics, objective), int(metrics["evictions"]))
    return values


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_optimum_never_worse_than_any_heuristic(objective):
    tight = EngineConfig(kv_capacity=24, token_budget=16, max_batch_size=8)
    setting = tiny_setting((3, 4))
    evicting = 0
    for seed, engine in itertools.product(range(4), (TINY_ENGINE, tight)):
        workload = setting.sample(seed)
        if (workload.prompt_len + workload.output_len - 1).max() > engine.kv_capacity:
            continue
        result = solve_optimal(workload, COST, engine, objective, time_limit=20)
        assert result.status == "OPTIMAL"
        for name, (value, evictions) in _heuristic_values(workload, engine, objective).items():
            assert result.replayed_objective <= value + 1e-9, (seed, name)
            evicting += evictions > 0
    assert evicting > 0, "the sweep should include instances where heuristics evict"


def test_forbidding_eviction_never_helps_and_never_evicts():
    workload = Workload.from_lists([6, 5, 4], [4, 3, 4])
    engine = EngineConfig(kv_capacity=12, token_budget=12, max_batch_size=8)
    free = solve_optimal(workload, COST, engine, "latency", time_limit=20)
    fixed = solve_optimal(workload, COST, engine, "latency", time_limit=20, allow_eviction=False)
    assert free.status == fixed.status == "OPTIMAL"
    assert fixed.replayed["evictions"] == 0
    assert free.objective <= fixed.objective + 1e-12


def test_time_limit_returns_feasible_with_bound():
    workload = tiny_setting(12).sample(1)
    result = solve_optimal(workload, objective="latency", time_limit=3.0)
    assert result.wall_time < 3.0 + 2.0
    assert result.status == "FEASIBLE" and 0 < result.gap < 1 and result.best_bound > 0
    assert result.best_bound <= result.objective
    assert result.replayed_objective <= result.hint_objective + 1e-9


def test_time_limit_bounds_the_whole_call_on_a_large_instance():
    """Building the model of 200 requests takes minutes: the call must give up building at the limit and return the
    best heuristic's schedule with a valid bound."""
    workload = tiny_setting(200).sample(0)
    result = solve_optimal(workload, objective="gpu_time", time_limit=2.0)
    assert result.wall_time < 2.0 + 1.5
    assert result.status == "FEASIBLE" and 0 < result.best_bound <= result.objective
    assert result.replayed_objective == pytest.approx(result.objective, abs=result.rounding_bound)
    assert result.replayed_objective <= result.hint_objective + 1e-9


def test_model_building_stops_at_its_deadline():
    instance = ScheduleInstance((5, 6, 7), (3, 2, 4), 48, 32, 8)
    cost = IntegerLinearCost.from_cost_model(COST)
    with pytest.raises(ModelBuildTimeout, match="deadline"):
        ScheduleModel(instance, cost, "latency", 12, deadline=time.perf_counter() - 1.0)
    model = ScheduleModel(instance, cost, "latency", 12, deadline=time.perf_counter() + 60.0)
    solver = cp_model.CpSolver()
    assert solver.solve(model.model) == cp_model.OPTIMAL and len(model.decisions(solver)) >= 4


@pytest.mark.parametrize("time_limit", [0, -1.0, float("nan"), "3"])
def test_time_limit_must_be_a_positive_number(time_limit):
    with pytest.raises(ValueError, match="time_limit must be a positive number"):
        solve_optimal(Workload.from_lists([3], [2]), time_limit=time_limit)


def test_invalid_inputs_are_clear_errors():
    with pytest.raises(WorkloadError, match="KV capacity"):
        solve_optimal(Workload.from_lists([40, 5], [10, 2]), time_limit=1)
    with pytest.raises(ValueError, match="offline"):
        solve_optimal(Workload([0.0, 1.0], [3, 3], [2, 2]), time_limit=1)
    with pytest.raises(ValueError, match="objective"):
        solve_optimal(Workload.from_lists([3], [2]), objective="throughput")
    with pytest.raises(ValueError, match="block_size"):
        solve_optimal(Workload.from_lists([3], [2]), engine=EngineConfig(48, 32, 8, block_size=2))
    with pytest.raises(TypeError, match="LinearCostModel"):
        solve_optimal(Workload.from_lists([3], [2]), cost_model=object())
    with pytest.raises(InfeasibleDecisionError):
        solve_optimal(Workload.from_lists([3], [2]), hint=[Decision([0], [5])])


def test_replay_scheduler_refuses_to_run_past_its_schedule():
    workload = Workload.from_lists([3, 2], [2, 2])
    with pytest.raises(RuntimeError, match="only 1 decisions"):
        Simulator(workload, COST, TINY_ENGINE).run(ReplayScheduler([Decision([0], [3])]))


def test_integer_cost_matches_linear_model_within_rounding_bound():
    cost = IntegerLinearCost.from_cost_model(COST)
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_pre, n_dec = rng.integers(0, 4, size=2)
        batch = Batch.of([tuple(x) for x in rng.integers(1, 40, size=(n_pre, 2))], rng.integers(1, 60, size=n_dec))
        exact = COST.batch_time(batch)
        assert abs(cost.batch_time(batch) * cost.unit_seconds - exact) <= cost.rounding_bound(batch) + 1e-15
        if batch.num_requests:
            assert cost.batch_time(batch) >= cost.min_batch_time()


def _instance(workload: Workload, engine: EngineConfig = TINY_ENGINE) -> ScheduleInstance:
    return ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                            engine.kv_capacity, engine.token_budget, engine.max_batch_size)


# instances proven in about a second on 2 cores (others of the same size can take the whole limit: see optimal_scale)
@pytest.mark.parametrize("num_requests, seed", [(4, 2), (5, 0), (5, 3)])
def test_iteration_bound_covers_the_hint_and_the_optimum(num_requests, seed):
    workload = tiny_setting(num_requests).sample(seed)
    cost = IntegerLinearCost.from_cost_model(COST)
    for objective in ("latency", "gpu_time"):
        result = solve_optimal(workload, objective=objective, time_limit=30)
        assert result.status == "OPTIMAL"
        upper = round(result.objective / cost.unit_seconds)
        assert len(result.decisions) <= iteration_bound(_instance(workload), cost, objective, upper)
        assert len(result.decisions) <= result.num_iterations_bound


@pytest.mark.parametrize("seed", range(3))
def test_gpu_time_iteration_bound_holds_for_every_heuristic_schedule(seed):
    """The GPU-time bound needs no optimality: any schedule costing at most the given value fits it (so a heuristic's
    own cost must cover its own length; checked to fail when every request is charged a prefill iteration)."""
    workload = tiny_setting(8).sample(seed)
    cost = IntegerLinearCost.from_cost_model(COST)
    for name, scheduler_class in SCHEDULERS.items():
        sim = Simulator(workload, COST, TINY_ENGINE)
        sim.run(scheduler_class())
        decisions = list(sim.log.decisions)
        value = sum(cost.batch_time(step.batch) for _, step in _replay_steps(workload, COST, TINY_ENGINE, decisions))
        assert len(decisions) <= iteration_bound(_instance(workload), cost, "gpu_time", value), name


def test_heuristics_complete_a_schedule_prefix():
    """A truncated model's unfinished solution becomes a real schedule: the best heuristic continues from the state
    the prefix leaves, and the result starts with the prefix and finishes every request."""
    workload = tiny_setting(8).sample(0)
    sim = Simulator(workload, COST, TINY_ENGINE)
    sim.run(SCHEDULERS["sarathi"]())
    prefix = list(sim.log.decisions)[:4]
    name, decisions, value = best_heuristic_schedule(workload, COST, TINY_ENGINE, "latency", prefix=prefix)
    assert name in SCHEDULERS
    assert decisions[:4] == prefix
    replay = Simulator(workload, COST, TINY_ENGINE)
    metrics = replay.run(ReplayScheduler(decisions))
    assert replay.done and objective_value(metrics, "latency") == pytest.approx(value)


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
@pytest.mark.parametrize("num_requests", [5, ALL_SUBSET_CUTS_UP_TO + 2])
def test_every_heuristic_schedule_satisfies_the_model_and_its_cuts(objective, num_requests):
    """The redundant cuts must hold for every real schedule: each heuristic's schedule, fixed in the model, is a
    solution at its integer cost, and its first iterations are a solution of the truncated model costing no more
    (the KV-area completion cuts, the prefill cuts and the cost-to-go are all exercised)."""
    setting = tiny_setting(num_requests)
    workload = setting.sample(3)
    cost = IntegerLinearCost.from_cost_model(setting.cost_model)
    engine = setting.engine
    instance = ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                                engine.kv_capacity, engine.token_budget, engine.max_batch_size)
    schedules = {}
    for name in ("vllm", "sarathi", "sort_prompt", "srpt", "mlfq"):
        sim = Simulator(workload, setting.cost_model, engine)
        sim.run(SCHEDULERS[name]())
        schedules[name] = list(sim.log.decisions)
    for name, decisions in schedules.items():
        value = sum((1 if objective == "gpu_time" else unfinished) * cost.batch_time(step.batch)
                    for unfinished, step in _replay_steps(workload, setting.cost_model, engine, decisions))
        for horizon, truncated_bound in ((len(decisions), None), (len(decisions) // 2, len(decisions))):
            schedule = ScheduleModel(instance, cost, objective, horizon, truncated_bound=truncated_bound)
            schedule.fix_decisions(decisions[:horizon])
            solver = cp_model.CpSolver()
            solver.parameters.num_workers = 1
            solver.parameters.max_time_in_seconds = 20
            status = solver.solve(schedule.model)
            assert status == cp_model.OPTIMAL, (name, horizon, solver.status_name(status))
            if truncated_bound is None:
                assert round(solver.objective_value) == value, name
            else:
                assert solver.objective_value <= value, name


def _replay_steps(workload, cost_model, engine, decisions):
    """(requests unfinished before the step, step result) for each decision, through a fresh simulator."""
    sim = Simulator(workload, cost_model, engine)
    for decision in decisions:
        unfinished = len(sim.waiting) + len(sim.resident)
        yield unfinished, sim.step(decision)


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_deepening_from_a_too_short_horizon_still_finds_the_exhaustive_optimum(objective):
    """A one-iteration start makes every first truncated relaxation leave requests unfinished: the lower bounds of
    the truncated models must stay below the optimum and the deepening must reach it."""
    for prompts, outputs, kv_capacity, budget in TINY_CASES[1:3]:
        workload = Workload.from_lists(prompts, outputs)
        engine = EngineConfig(kv_capacity=kv_capacity, token_budget=budget, max_batch_size=8)
        best = exhaustive_optimum(workload, engine, objective)
        result = solve_optimal(workload, COST, engine, objective, time_limit=20, initial_horizon=1)
        assert result.status == "OPTIMAL" and result.num_iterations_bound > 1
        assert result.replayed_objective == pytest.approx(best, abs=2 * result.rounding_bound + 1e-12)


@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_optimal_schedule_replays_through_the_env(objective):
    gym = pytest.importorskip("gymnasium")
    from baselines.policy import SchedulerPolicy

    env = gym.make("InferMax-Tiny-v0", action_mode="sequential", objective=objective)
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        if len(env.unwrapped.sim.workload) <= 4:
            break
    result = solve_optimal(env.unwrapped.sim.workload, objective=objective, time_limit=20)
    policy = SchedulerPolicy(result.scheduler(), env)
    terminated = truncated = False
    while not (terminated or truncated):
        action, _ = policy.predict(obs)
        obs, _, terminated, truncated, info = env.step(action)
    assert terminated
    assert info["metrics"] == result.replayed.summary


def test_models_study_compares_variants_and_previous_rows(tmp_path):
    """benchmarks/optimal_scale.py models: each variant's rows saved, earlier rows summarised as "(previous)"."""
    root = Path(__file__).resolve().parents[1]
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps([{"model": "old", "objective": "gpu_time", "n": 2, "seed": 0, "status": "FEASIBLE",
                                     "gap": 0.5, "time_s": 5.0}]))
    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "optimal_scale.py"), "models", "--sizes", "2",
                             "--seeds", "1", "--time-limit", "10", "--objectives", "gpu_time", "--variants", "old",
                             "new", "--previous", str(previous), "--json", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=root, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["old", "new"] and all(r["status"] == "OPTIMAL" for r in rows)
    assert rows[0]["objective_s"] == pytest.approx(rows[1]["objective_s"], rel=1e-9)
    assert "old (previous)" in result.stdout and "gap mean  50.00%" in result.stdout
