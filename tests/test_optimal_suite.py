"""The benchmark suite: every stored schedule replays through the simulator to its stored objective, stored bounds
sit below it and below every heuristic, and the evaluation API gives the same brackets for a scheduler and for the
same scheduler driving the env."""

from __future__ import annotations

import gymnasium as gym
import pytest

from baselines import SCHEDULERS, make_scheduler
from baselines.optimal import optimum_lower_bound
from baselines.optimal.suite import FAMILIES, evaluate, load_family, replay, summarize
from baselines.policy import SchedulerPolicy
from infermax_env import LinearCostModel, Simulator, objective_value

STORED = [(family, objective) for family in FAMILIES for objective in ("latency", "gpu_time")
          if load_family(family, objective)]


def test_the_suite_has_stored_instances():
    assert {"tiny-6", "tiny-10"} <= {family for family, _ in STORED}


@pytest.mark.parametrize("family, objective", STORED)
def test_every_stored_schedule_replays_to_its_objective(family, objective):
    for entry in load_family(family, objective):
        assert replay(entry) == pytest.approx(entry.best_known, rel=1e-9), (family, entry.seed)
        assert 0 < entry.bound <= entry.best_known * (1 + 1e-9)
        assert entry.proven == (entry.record["status"] == "OPTIMAL")
        settings = entry.record["settings"]
        assert {"time_limit_s", "workers", "seed", "method", "ortools"} <= set(settings)
        closed = optimum_lower_bound(entry.workload, engine=entry.engine, objective=objective)
        assert entry.bound >= closed.bound * (1 - 1e-9)  # never below the sound closed form
        assert entry.best_known <= closed.best_known * (1 + 1e-9)  # never worse than the best heuristic


@pytest.mark.parametrize("family, objective", [pytest.param(f, o, marks=pytest.mark.slow) if f.startswith("trace")
                                               else (f, o) for f, o in STORED])
def test_no_heuristic_is_below_a_stored_bound(family, objective):
    for entry in load_family(family, objective):
        for name, cls in SCHEDULERS.items():
            sim = Simulator(entry.workload, LinearCostModel(), entry.engine)
            try:
                value = objective_value(sim.run(cls()), objective)
            except RuntimeError:  # a fixed reservation that would have to evict
                continue
            assert value >= entry.bound * (1 - 1e-9), (family, entry.seed, name)


def test_env_policy_and_scheduler_get_the_same_brackets():
    env = gym.make("InferMax-Tiny-v0")
    policy = SchedulerPolicy(make_scheduler("sarathi"), env)
    through_env = evaluate("tiny-6", lambda obs, info: policy.predict(obs)[0], "gpu_time", env=env)
    direct = evaluate("tiny-6", "sarathi", "gpu_time")
    assert [b.value for b in through_env] == pytest.approx([b.value for b in direct], rel=1e-12)
    for bracket in direct:
        assert bracket.gap_to_best_known <= bracket.gap_to_bound
        assert bracket.gap_to_bound >= 0
    summary = summarize(direct)
    assert summary["instances"] == len(direct) and summary["gap_to_best_known"] <= summary["gap_to_bound"]


def test_bad_family_objective_or_env_are_clear_errors():
    with pytest.raises(ValueError, match="unknown family"):
        evaluate("tiny-7", "sarathi", "gpu_time")
    with pytest.raises(ValueError, match="objective"):
        evaluate("tiny-6", "sarathi", "throughput")
    env = gym.make("InferMax-Tiny-v0", kv_capacity=96)
    with pytest.raises(ValueError, match="engine"):
        evaluate("tiny-6", lambda obs, info: 0, "gpu_time", env=env)
