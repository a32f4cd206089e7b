"""Heuristic schedulers driven through the env match the same schedulers on the simulator; vector envs and
SB3 work with the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import infermax_env  # noqa: F401  (registers the envs)
from infermax_env.envs import NotExpressibleError
from tests.conftest import RecordingVLLM, metrics_through_env


@pytest.mark.parametrize("scheduler", ["vllm", "infermax", "sarathi"])
@pytest.mark.parametrize("mode", ["select", "sequential"])
def test_schedulers_through_the_tiny_env_match_the_simulator(scheduler, mode):
    env = gym.make("InferMax-Tiny-v0", action_mode=mode)
    for seed in range(8):
        through_env, direct = metrics_through_env(env, scheduler, seed)
        assert through_env == direct, (scheduler, mode, seed)
        assert through_env["evictions"] >= 0


def test_tiny_instances_make_schedulers_preempt():
    evictions = [metrics_through_env(gym.make("InferMax-Tiny-v0"), "vllm", seed)[0]["evictions"] for seed in range(8)]
    assert sum(evictions) > 0


@pytest.mark.parametrize("scheduler", ["vllm", "infermax"])
def test_schedulers_through_infermax_v0_match_the_simulator(scheduler):
    """A whole trace window with real memory contention (K covers every request so no decision is cut)."""
    env = gym.make("InferMax-v0", window=256)
    through_env, direct = metrics_through_env(env, scheduler, seed=0)
    assert through_env == direct
    if env.unwrapped.config.workload_source.startswith("azure-conv"):  # the synthetic stand-in may not fill M
        assert through_env["peak_kv_utilization"] > 0.99 and through_env["evictions"] > 0


def test_inexpressible_decisions_raise_instead_of_diverging():
    env = gym.make("InferMax-Tiny-v0", action_mode="priority")
    with pytest.raises(NotExpressibleError, match="priority mode cannot express"):
        metrics_through_env(env, "vllm", seed=0)
    small_window = gym.make("InferMax-Tiny-v0", window=2)
    with pytest.raises(NotExpressibleError, match="outside the K = 2 slot window"):
        metrics_through_env(small_window, "vllm", seed=1)


def test_policy_resets_the_scheduler_at_each_episode():
    env = gym.make("InferMax-Tiny-v0", action_mode="sequential")
    first = metrics_through_env(env, "infermax", seed=2)[0]
    again = metrics_through_env(env, "infermax", seed=2)[0]
    assert first == again


def test_policy_pushes_each_launched_step_to_the_scheduler_on_step_hook():
    from baselines.policy import SchedulerPolicy
    from infermax_env import Simulator

    env = gym.make("InferMax-Tiny-v0", action_mode="sequential")
    scheduler = RecordingVLLM()
    policy = SchedulerPolicy(scheduler, env)
    env.reset(seed=3)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(policy.predict(None)[0])
    sim = env.unwrapped.sim
    direct = RecordingVLLM()
    Simulator(sim.workload, sim.cost_model, sim.config, oracle=sim.oracle).run(direct)
    # Before each decision the scheduler has seen every step so far (the final step needs no further decision).
    seen, seen_directly = ([r.decision for r in s.results] for s in (scheduler, direct))
    assert seen == sim.log.decisions[:-1] == seen_directly[:-1]


# ---- vector envs and SB3 ------------------------------------------------------------------------------------
def _rollout(vec_step, vec_reset, num_envs: int, actions: np.ndarray):
    obs, _ = vec_reset(seed=[10 + i for i in range(num_envs)])
    rewards = []
    for action in actions:
        obs, reward, *_ = vec_step(action)
        rewards.append(np.asarray(reward).copy())
    return np.array(rewards), obs


@pytest.mark.parametrize("vector_class", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_gymnasium_vector_envs_are_seeded_and_deterministic(vector_class):
    actions = np.ones((6, 2, 12), dtype=np.int64)
    results = []
    for _ in range(2):
        vec = vector_class([lambda: gym.make("InferMax-Tiny-v0") for _ in range(2)])
        results.append(_rollout(vec.step, vec.reset, 2, actions))
        vec.close()
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1]["requests"].shape == (2, 12, 13)
    assert not np.array_equal(results[0][0][:, 0], results[0][0][:, 1])  # different seeds, different instances


@pytest.mark.parametrize("vec_kind", ["dummy", "subproc"])
def test_sb3_vector_envs_step_and_agree(vec_kind):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    kwargs = {"vec_env_cls": DummyVecEnv} if vec_kind == "dummy" else {
        "vec_env_cls": SubprocVecEnv, "vec_env_kwargs": {"start_method": "fork"}}
    rewards = []
    for _ in range(2):
        vec = make_vec_env("InferMax-Tiny-v0", n_envs=2, seed=3, env_kwargs={"action_mode": "sequential"}, **kwargs)
        vec.reset()
        run = []
        for _ in range(30):
            _, reward, _, _ = vec.step(np.array([24, 24]))  # launch: repaired by the livelock rule when empty
            run.append(reward.copy())
        rewards.append(np.array(run))
        vec.close()
    assert np.array_equal(rewards[0], rewards[1]) and (rewards[0] < 0).all()


def test_maskable_ppo_trains_on_tiny_with_the_dict_observation():
    from sb3_contrib import MaskablePPO

    env = gym.make("InferMax-Tiny-v0", action_mode="sequential")
    model = MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    assert env.unwrapped.action_masks()[int(action)]


def test_launch_takes_the_step_of_the_decisions_actions():
    """``env.launch(decision)`` = the sequential mode's actions for that decision: same observations, same reward
    (summed over the sub-steps), same metrics; it also runs decisions outside the window and in any mode."""
    from baselines import make_scheduler

    encoded = gym.make("InferMax-Tiny-v0", action_mode="sequential").unwrapped
    launched = gym.make("InferMax-Tiny-v0", action_mode="priority").unwrapped
    narrow = gym.make("InferMax-Tiny-v0", window=2).unwrapped
    scheduler = make_scheduler("vllm")
    obs_a, _ = encoded.reset(seed=3)
    launched.reset(seed=3)
    narrow.reset(seed=3)
    scheduler.reset(encoded.sim)
    done = False
    while not done:
        decision = scheduler.decide(encoded.sim)
        total = 0.0
        for action in encoded.decision_to_actions(decision):
            obs_a, reward, done, _, info_a = encoded.step(action)
            total += reward
        obs_b, reward_b, done_b, _, info_b = launched.launch(decision)
        assert reward_b == pytest.approx(total, rel=1e-12) and done_b == done
        for key in ("requests", "slot_mask", "global"):
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        info_c = narrow.launch(decision)[-1]
    assert info_a["metrics"] == info_b["metrics"] == info_c["metrics"]
    with pytest.raises(gym.error.ResetNeeded):
        launched.launch(decision)


def test_launch_rejects_bad_decisions_by_name():
    from infermax_env.simulator import Decision, InfeasibleDecisionError

    env = gym.make("InferMax-Tiny-v0", action_mode="sequential").unwrapped
    env.reset(seed=0)
    with pytest.raises(TypeError, match="Decision"):
        env.launch([0])
    with pytest.raises(InfeasibleDecisionError):
        env.launch(Decision([10_000], [1]))
    env.step(0)  # add slot 0's request: the sequential batch is now half built
    with pytest.raises(NotExpressibleError, match="half built"):
        env.launch(Decision())
