"""Copies of an env or a simulator (copy.deepcopy, pickle, Simulator.clone) behave exactly like the original,
rebinding a simulator row is an error, and an episode's memory stays bounded by what the run log needs."""

from __future__ import annotations

import copy
import pickle
import tracemalloc

import gymnasium as gym
import numpy as np
import pytest

import baselines  # noqa: F401  (registers the scheduler names)
from infermax_env import LinearCostModel, Simulator
from infermax_env.instances import TINY_ENGINE, tiny_setting
from tests.conftest import random_feasible_decision

MODES = ("select", "priority", "sequential")
COPIES = {"deepcopy": copy.deepcopy, "pickle": lambda env: pickle.loads(pickle.dumps(env))}


def random_action(env: gym.Env, rng: np.random.Generator):
    base = env.unwrapped
    mask = base.action_masks()
    if base.config.action_mode == "select":
        return (rng.random(len(mask) // 3) * mask.reshape(-1, 3).sum(axis=1)).astype(np.int64)
    if base.config.action_mode == "priority":
        return rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)
    return int(rng.choice(np.flatnonzero(mask)))


def assert_same_step(a, b) -> None:
    obs_a, reward_a, terminated_a, truncated_a, info_a = a
    obs_b, reward_b, terminated_b, truncated_b, info_b = b
    assert all(np.array_equal(obs_a[key], obs_b[key]) for key in obs_a)
    assert (reward_a, terminated_a, truncated_a) == (reward_b, terminated_b, truncated_b)
    assert info_a.get("batch") == info_b.get("batch") and info_a["repairs"] == info_b["repairs"]


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", ["InferMax-Tiny-v0", "InferMax-v0"])
def test_a_copied_env_steps_exactly_like_the_original(env_id, mode, how):
    env = gym.make(env_id, action_mode=mode)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(15):  # a state with residents, evictions in flight and a sequential batch possibly half built
        _, _, terminated, _, _ = env.step(random_action(env, rng))
        if terminated:
            env.reset(seed=4)
    twin = COPIES[how](env)
    assert twin.unwrapped.sim is not env.unwrapped.sim
    for _ in range(60):
        action = random_action(env, rng)
        first, second = env.step(action), twin.step(action)
        assert_same_step(first, second)
        if first[2]:
            break
    sim, other = env.unwrapped.sim, twin.unwrapped.sim
    assert np.array_equal(sim.counts, other.counts) and np.array_equal(sim.times, other.times, equal_nan=True)
    assert other.kv.base is other.counts and other.closed.base is other.flags  # the rows still view the state


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "clone"])
def test_simulator_copies_step_like_the_original_and_are_independent(how):
    workload = tiny_setting().sample(5)
    sim = Simulator(workload, LinearCostModel(), TINY_ENGINE)
    rng = np.random.default_rng(1)
    for _ in range(4):
        sim.step(random_feasible_decision(sim, rng, 0.3))
    make = {"deepcopy": copy.deepcopy, "pickle": lambda s: pickle.loads(pickle.dumps(s)),
            "clone": Simulator.clone}[how]
    twin, clone = make(sim), sim.clone()
    for row in ("kv", "generated", "arrival", "finish_time", "closed", "rejected"):
        view = getattr(twin, row)
        assert view.base is getattr(twin, {"arrival": "times", "finish_time": "times", "closed": "flags",
                                           "rejected": "flags"}.get(row, "counts"))
    while not sim.done:
        decision = random_feasible_decision(sim, rng, 0.3)
        results = [s.step(decision) for s in (sim, twin, clone)]
        assert len({(r.batch_time, r.latency_area, tuple(r.finished.tolist())) for r in results}) == 1
    for other in (twin, clone):
        assert other.done and other.clock == sim.clock and other.num_iterations == sim.num_iterations
        assert np.array_equal(other.counts, sim.counts) and other.waiting == sim.waiting == set()
        assert other.log.decisions == sim.log.decisions
    fresh = Simulator(workload, LinearCostModel(), TINY_ENGINE)
    twin = make(fresh)
    twin.step(random_feasible_decision(twin, np.random.default_rng(2), 0.0))
    assert fresh.num_iterations == 0 and not fresh.kv.any()  # stepping a copy leaves the original alone


def test_rebinding_a_simulator_row_is_a_clear_error():
    sim = Simulator(tiny_setting().sample(0), LinearCostModel(), TINY_ENGINE)
    with pytest.raises(AttributeError, match=r"Simulator.kv is a row of Simulator.counts.*in place"):
        sim.kv = np.zeros(sim.num_requests, dtype=np.int64)
    with pytest.raises(AttributeError, match=r"Simulator.counts is the packed int64 per-request state"):
        sim.counts = sim.counts.copy()
    sim.kv[:] = 0  # writing in place is the supported way
    assert not sim.counts[0].any()


def test_logged_decisions_do_not_keep_the_action_scratch_arrays():
    """Per-step retention is the log entry itself, not the (3, K) arrays the batch kernels fill."""
    for mode in ("select", "priority"):
        env = gym.make("InferMax-v0", action_mode=mode, window=512)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(50):
            env.step(random_action(env, rng))
        log = env.unwrapped.sim.log
        for decision in log.decisions[-40:]:
            for array in (decision.run_ids, decision.run_tokens, decision.evict_ids):
                owner = array if array.base is None else array.base
                assert owner.nbytes <= 3 * 8 * max(len(decision.run_ids), len(decision.evict_ids), 1)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        steps = 0
        for _ in range(400):
            _, _, terminated, truncated, _ = env.step(random_action(env, rng))
            steps += 1
            if terminated or truncated:
                break
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        # With K = 512 each (3, K) scratch array alone is 12 KiB; the log keeps well under that per step.
        assert grown / steps < 3_000, f"{mode}: {grown / steps:.0f} bytes retained per step"
