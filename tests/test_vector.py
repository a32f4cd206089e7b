"""The native vector env (gymnasium.make_vec(..., vectorization_mode="vector_entry_point")) against Gymnasium's
sync vectorisation of the same env: identical observations, rewards, terminations and truncations."""

import gymnasium as gym
import numpy as np
import pytest

import baselines  # noqa: F401  (registers the scheduler names used as reference="vllm")
import infermax_env  # noqa: F401
from infermax_env.vector import InferMaxVectorEnv
from infermax_env.wrappers import SCALAR_INFO_KEYS


def random_valid_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per env and slot, a uniformly random choice among the allowed prefix of (leave, run, evict)."""
    allowed = masks.reshape(len(masks), -1, 3).sum(axis=2)
    return (rng.random(allowed.shape) * allowed).astype(np.int64)


@pytest.mark.parametrize("env_id, kwargs, steps", [
    ("InferMax-Tiny-v0", {"max_episode_steps": 7}, 60),   # many terminations and truncations
    ("InferMax-Tiny-v0", {"objective": "gpu_time", "reference": "vllm"}, 60),
    ("InferMax-v0", {"window": 16}, 40),
])
def test_vector_entry_point_matches_sync_make_vec(env_id, kwargs, steps):
    num_envs = 3
    native = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)
    sync = gym.make_vec(env_id, num_envs, vectorization_mode="sync", **kwargs)
    assert isinstance(native.unwrapped, InferMaxVectorEnv)
    assert native.observation_space == sync.observation_space and native.action_space == sync.action_space
    rng = np.random.default_rng(0)
    observations, info = native.reset(seed=11)
    expected, _ = sync.reset(seed=11)
    assert set(info) == set(SCALAR_INFO_KEYS)
    ended = 0
    for _ in range(steps):
        for key in expected:
            np.testing.assert_array_equal(observations[key], expected[key])
        actions = random_valid_actions(observations["action_mask"], rng)
        observations, rewards, terminations, truncations, info = native.step(actions)
        expected, expected_rewards, expected_terminations, expected_truncations, _ = sync.step(actions)
        np.testing.assert_array_equal(rewards, expected_rewards)
        np.testing.assert_array_equal(terminations, expected_terminations)
        np.testing.assert_array_equal(truncations, expected_truncations)
        assert set(info) == set(SCALAR_INFO_KEYS) and all(v.shape == (num_envs,) for v in info.values())
        ended += int((terminations | truncations).sum())
    assert ended > 0 or env_id == "InferMax-v0"
    native.close()
    sync.close()


def test_scalar_info_and_details_and_masks():
    env = gym.make_vec("InferMax-Tiny-v0", 2, vectorization_mode="vector_entry_point", info_details=True)
    observations, info = env.reset(seed=0)
    np.testing.assert_array_equal(env.unwrapped.action_masks(), observations["action_mask"].astype(bool))
    assert info["num_requests"].tolist() == [d["num_requests"] for d in info["details"]]
    finished = np.zeros(2, dtype=bool)
    rng = np.random.default_rng(1)
    while not finished.all():
        observations, _, terminations, _, info = env.step(random_valid_actions(observations["action_mask"], rng))
        for i in np.flatnonzero(terminations):
            assert info["objective"][i] == info["details"][i]["objective"] > 0
        assert (info["objective"][~terminations] == 0).all()
        finished |= terminations


def test_partial_reset_seeds_and_bad_arguments():
    env = InferMaxVectorEnv(3, preset="tiny")
    observations, _ = env.reset(seed=[5, 6, 7])
    single, _ = gym.make("InferMax-Tiny-v0").reset(seed=6)
    np.testing.assert_array_equal(observations["requests"][1], single["requests"])
    again, _ = env.reset(seed=[None, 6, None], options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(again["requests"], observations["requests"])
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        InferMaxVectorEnv(0)
    with pytest.raises(ValueError, match="3 seeds, got 2"):
        env.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": [True, True, True]})
    with pytest.raises(ValueError, match="does not render"):
        InferMaxVectorEnv(2, preset="tiny", render_mode="ansi")
    assert env.call("slot_ids")[1].shape == (12,) and env.get_attr("episode") == (1, 2, 1)


@pytest.mark.parametrize("action_mode", ["priority", "sequential"])
def test_other_action_modes_match_sync_make_vec(action_mode):
    native = gym.make_vec("InferMax-Tiny-v0", 2, vectorization_mode="vector_entry_point", action_mode=action_mode)
    sync = gym.make_vec("InferMax-Tiny-v0", 2, vectorization_mode="sync", action_mode=action_mode)
    native.action_space.seed(4)
    observations, _ = native.reset(seed=2)
    sync.reset(seed=2)
    for _ in range(40):
        actions = native.action_space.sample()
        observations, rewards, terminations, _, _ = native.step(actions)
        expected, expected_rewards, expected_terminations, _, _ = sync.step(actions)
        np.testing.assert_array_equal(rewards, expected_rewards)
        np.testing.assert_array_equal(terminations, expected_terminations)
        np.testing.assert_array_equal(observations["requests"], expected["requests"])


@pytest.mark.parametrize("keys", [{}, {"obs_key": "obs", "mask_key": "mask", "mask_dtype": "bool"}, {"mask_key": None}])
def test_flat_observations_match_sync_make_vec_with_the_flat_wrapper(keys):
    from infermax_env.wrappers import FlatObservation

    native = gym.make_vec("InferMax-Tiny-v0", 2, vectorization_mode="vector_entry_point", flat=True, **keys)
    sync = gym.make_vec("InferMax-Tiny-v0", 2, vectorization_mode="sync",
                        wrappers=[lambda env: FlatObservation(env, **keys)])
    assert native.single_observation_space == sync.single_observation_space
    native.action_space.seed(1)
    observations, _ = native.reset(seed=3)
    expected, _ = sync.reset(seed=3)
    for _ in range(30):
        if isinstance(expected, dict):
            assert set(observations) == set(expected)
            for key in expected:
                np.testing.assert_array_equal(observations[key], expected[key])
                assert observations[key].dtype == expected[key].dtype
        else:
            np.testing.assert_array_equal(observations, expected)
        actions = random_valid_actions(native.unwrapped.action_masks(), np.random.default_rng(0))
        observations, *_ = native.step(actions)
        expected, *_ = sync.step(actions)
