"""Library formats of infermax_env.wrappers: flat observations with the mask split out, the (K, 3) slot mask and
the fixed-schema scalar info."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import baselines  # noqa: F401  (registers the scheduler names used as reference="vllm")
import infermax_env  # noqa: F401
from infermax_env.envs import GLOBAL_FEATURES, REQUEST_FEATURES
from infermax_env.wrappers import SCALAR_INFO_KEYS, FlatObservation, ScalarInfo, SlotMask

K = 12  # InferMax-Tiny-v0's window


def tiny(**kwargs):
    return gym.make("InferMax-Tiny-v0", **kwargs)


def first_valid_action(observation_mask):
    """Run every slot the mask allows to run (select mode)."""
    return np.where(np.asarray(observation_mask).reshape(-1, 3)[:, 1], 1, 0).astype(np.int64)


@pytest.mark.parametrize("keys", [("observations", "action_mask"), ("obs", "mask")])
def test_flat_observation_holds_the_dict_in_order_and_splits_the_mask(keys):
    raw, flat = tiny(), FlatObservation(tiny(), *keys, mask_dtype="bool" if keys[1] == "mask" else "float32")
    expected, _ = raw.reset(seed=3)
    observation, _ = flat.reset(seed=3)
    assert set(observation) == set(keys) and flat.observation_space.contains(observation)
    vector, mask = observation[keys[0]], observation[keys[1]]
    assert vector.dtype == np.float32 and vector.shape == (K * len(REQUEST_FEATURES) + K + len(GLOBAL_FEATURES),)
    np.testing.assert_array_equal(vector[:K * len(REQUEST_FEATURES)].reshape(K, -1), expected["requests"])
    np.testing.assert_array_equal(vector[K * len(REQUEST_FEATURES):-len(GLOBAL_FEATURES)], expected["slot_mask"])
    np.testing.assert_array_equal(vector[-len(GLOBAL_FEATURES):], expected["global"])
    np.testing.assert_array_equal(mask.astype(bool), flat.action_masks())
    for _ in range(3):
        action = first_valid_action(mask)
        observation, *_ = flat.step(action)
        expected, *_ = raw.step(action)
        mask = observation[keys[1]]
        np.testing.assert_array_equal(mask.astype(np.int8), expected["action_mask"])


def test_flat_box_works_with_normalize_observation_and_sb3_check_env_without_shape_warnings():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as raw_warnings:
        warnings.simplefilter("always")
        sb3_check_env(tiny())
    assert any("unconventional shape" in str(w.message) for w in raw_warnings)  # what the wrapper removes
    env = FlatObservation(tiny(), mask_key=None)
    assert isinstance(env.observation_space, gym.spaces.Box)
    with warnings.catch_warnings(record=True) as flat_warnings:
        warnings.simplefilter("always")
        sb3_check_env(env)
    assert not any("unconventional shape" in str(w.message) for w in flat_warnings)
    normalized = gym.wrappers.NormalizeObservation(env)
    observation, info = normalized.reset(seed=0)
    observation, *_ = normalized.step(first_valid_action(info["action_mask"]))
    assert observation.shape == env.observation_space.shape and np.isfinite(observation).all()


@pytest.mark.parametrize("wrap", [lambda e: FlatObservation(e), lambda e: FlatObservation(e, "obs", "mask", "bool"),
                                  lambda e: FlatObservation(e, mask_key=None), SlotMask, ScalarInfo],
                         ids=["rllib", "tianshou", "box", "slot-mask", "scalar-info"])
def test_wrapped_envs_pass_gymnasiums_env_checker(wrap):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version.*")
        check_env(wrap(tiny()), skip_render_check=True)


def test_slot_mask_is_the_select_mask_per_slot():
    env = SlotMask(tiny())
    observation, info = env.reset(seed=1)
    assert observation["action_mask"].shape == (K, 3) and observation["action_mask"].dtype == bool
    np.testing.assert_array_equal(observation["action_mask"].reshape(-1), info["action_mask"])
    assert env.observation_space.contains(observation)
    with pytest.raises(ValueError, match="action_mode='select'.*'priority'"):
        SlotMask(tiny(action_mode="priority"))


def test_scalar_info_keeps_one_schema_through_an_episode_and_reports_the_objective():
    env = ScalarInfo(tiny())
    raw = tiny()
    _, info = env.reset(seed=5)
    raw.reset(seed=5)
    schemas, terminated, truncated = [tuple(info)], False, False
    while not (terminated or truncated):
        action = first_valid_action(env.action_masks())
        _, _, terminated, truncated, info = env.step(action)
        _, _, _, _, full = raw.step(action)
        schemas.append(tuple(info))
        assert all(type(value) is float for value in info.values())
        assert info["num_runs"] == len(full["batch"]["run_ids"]) and info["batch_time"] == full["batch_time"]
    assert set(schemas) == {SCALAR_INFO_KEYS}
    assert info["objective"] == full["objective"] > 0 and info["reference_objective"] == 0.0
    assert info["num_requests"] == len(raw.unwrapped.sim.arrival)


def test_scalar_info_details_flag_and_reference():
    env = ScalarInfo(tiny(reference="vllm"), details=True)
    _, info = env.reset(seed=0)
    assert info["reference_objective"] > 0 and info["details"]["reference_objective"] == info["reference_objective"]


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="two different strings"):
        FlatObservation(tiny(), "x", "x")
    with pytest.raises(ValueError, match="mask_dtype.*int64"):
        FlatObservation(tiny(), mask_dtype="int64")
    with pytest.raises(TypeError, match="InferMax env"):
        FlatObservation(gym.make("CartPole-v1"))
