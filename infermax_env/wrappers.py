"""Observation and info formats for RL libraries, as Gymnasium wrappers over an InferMax env.

The env's own observation (the default, unchanged) is a Dict of ``requests`` (K, F), ``slot_mask`` (K,),
``global`` (G,) and ``action_mask``. Libraries want other shapes:

* :class:`FlatObservation`: one flat float32 vector ``[requests row by row, slot_mask, global]`` with the
  action mask split out under a key of your choice: ``FlatObservation(env)`` gives RLlib's
  ``{"observations", "action_mask"}``, ``FlatObservation(env, "obs", "mask", "bool")`` Tianshou's
  ``{"obs", "mask"}``, and ``FlatObservation(env, mask_key=None)`` a plain Box (SB3's ``MlpPolicy``,
  Gymnasium's ``NormalizeObservation``), the mask then coming from ``action_masks()`` and ``info["action_mask"]``.
* :class:`SlotMask`: the Dict observation with the select mode's mask as a (K, 3) bool array, one row of
  (leave, run, evict) per slot, the shape TorchRL's ``ActionMask`` expects for a ``MultiDiscrete([3] * K)``
  action.
* :class:`ScalarInfo`: an ``info`` with the same scalar keys (:data:`SCALAR_INFO_KEYS`) at every reset and
  step, for replay buffers and vector-env info aggregation; the full info stays available behind
  ``details=True``.

Every wrapper keeps ``action_masks()`` (sb3-contrib's hook) reachable on the wrapped env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

SCALAR_INFO_KEYS: tuple[str, ...] = (
    "launched",             # 1.0 when the step launched a batch (always, except while a sequential batch is built)
    "batch_time",           # seconds of GPU time of the launched batch (0 otherwise)
    "idle_time",            # seconds the engine idled before the batch (waiting for an arrival)
    "latency_area",         # requests in the system integrated over the step (seconds x requests)
    "num_runs",             # requests run by the batch
    "num_evictions",        # requests evicted by the batch
    "repairs_invalid",      # masked choices the env ignored
    "repairs_dropped",      # runs that did not fit the budget, batch size or memory
    "repairs_livelock",     # 1.0 when the livelock rule chose the batch
    "num_requests",         # requests of the episode's workload
    "objective",            # the episode's objective on its last step (0.0 before)
    "reference_objective",  # the reference scheduler's objective (0.0 without a reference)
)
"""The keys of :func:`scalar_info`, in order; every value is a Python float (NaN never appears, so equal steps compare equal)."""


def scalar_values(info: dict[str, Any], num_requests: int, reference_objective: float | None) -> tuple[float, ...]:
    """The values of :data:`SCALAR_INFO_KEYS`, in order, for an InferMax env's reset or step ``info``."""
    batch = info.get("batch")
    repairs = info.get("repairs")
    objective = info.get("objective")
    return (
        float(info.get("launched", False)),
        float(info.get("batch_time", 0.0)),
        float(info.get("idle_time", 0.0)),
        float(info.get("latency_area", 0.0)),
        float(len(batch["run_ids"])) if batch else 0.0,
        float(len(batch["evict_ids"])) if batch else 0.0,
        float(repairs["invalid"]) if repairs else 0.0,
        float(repairs["dropped"]) if repairs else 0.0,
        float(repairs["livelock"]) if repairs else 0.0,
        float(num_requests),
        0.0 if objective is None else float(objective),
        0.0 if reference_objective is None else float(reference_objective),
    )


def scalar_info(info: dict[str, Any], num_requests: int, reference_objective: float | None) -> dict[str, float]:
    """The fixed-schema scalar view (:data:`SCALAR_INFO_KEYS`) of an InferMax env's reset or step ``info``."""
    return dict(zip(SCALAR_INFO_KEYS, scalar_values(info, num_requests, reference_objective)))


def _infermax(env: gym.Env) -> gym.Env:
    base = env.unwrapped
    if not all(hasattr(base, name) for name in ("mode", "action_masks", "config")):
        raise TypeError(f"expected an InferMax env (gymnasium.make('InferMax-v0' or 'InferMax-Tiny-v0')), got "
                        f"{type(base).__name__}")
    return base


class _MaskForwarding:
    """``action_masks()`` of the wrapped InferMax env (Gymnasium 1.x wrappers do not forward attributes)."""

    env: gym.Env

    def action_masks(self) -> np.ndarray:
        return self.env.get_wrapper_attr("action_masks")()


class FlatObservation(_MaskForwarding, gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """A flat float32 observation, the action mask split out under ``mask_key`` (or left out).

    :param env: an InferMax env (any action mode).
    :param obs_key: the key of the flat vector when ``mask_key`` is set.
    :param mask_key: the key of the action mask; ``None`` makes the observation the flat Box itself.
    :param mask_dtype: dtype of the mask: ``"float32"`` (RLlib's), ``"int8"`` (the env's) or ``"bool"``.

    The flat vector is ``requests.reshape(-1)`` (K * F values, slot after slot, features in
    :data:`~infermax_env.envs.REQUEST_FEATURES` order), then ``slot_mask`` as 0/1 (K), then ``global`` (G); all
    in [0, 1].
    """

    def __init__(self, env: gym.Env, obs_key: str = "observations", mask_key: str | None = "action_mask",
                 mask_dtype: Any = "float32"):
        gym.utils.RecordConstructorArgs.__init__(self, obs_key=obs_key, mask_key=mask_key,
                                                 mask_dtype=np.dtype(mask_dtype).name)
        gym.ObservationWrapper.__init__(self, env)
        base = _infermax(env)
        if mask_key is not None and (not isinstance(obs_key, str) or not isinstance(mask_key, str)
                                     or obs_key == mask_key):
            raise ValueError(f"obs_key and mask_key must be two different strings, got {obs_key!r} and {mask_key!r}")
        self.mask_dtype = np.dtype(mask_dtype)
        if self.mask_dtype not in (np.dtype(np.int8), np.dtype(np.float32), np.dtype(bool)):
            raise ValueError(f"mask_dtype must be int8, float32 or bool, got {self.mask_dtype}")
        self.obs_key, self.mask_key = obs_key, mask_key
        spaces = env.observation_space.spaces
        size = int(np.prod(spaces["requests"].shape) + spaces["slot_mask"].shape[0] + spaces["global"].shape[0])
        flat = gym.spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        if mask_key is None:
            self.observation_space = flat
        else:
            mask = gym.spaces.Box(0, 1, shape=(base.mode.mask_size,), dtype=self.mask_dtype)
            self.observation_space = gym.spaces.Dict({obs_key: flat, mask_key: mask})

    def observation(self, observation: dict[str, np.ndarray]):
        flat = np.concatenate([observation["requests"].reshape(-1), observation["slot_mask"].astype(np.float32),
                               observation["global"]])
        if self.mask_key is None:
            return flat
        return {self.obs_key: flat, self.mask_key: observation["action_mask"].astype(self.mask_dtype)}


class SlotMask(_MaskForwarding, gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """The Dict observation with ``action_mask`` as a (K, 3) bool array (select mode only): row k allows
    (leave, run, evict) for slot k, matching ``MultiDiscrete([3] * K)`` as TorchRL's one-hot action spec."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        base = _infermax(env)
        if base.mode.name != "select":
            raise ValueError(f"SlotMask needs action_mode='select' (a per-slot (K, 3) mask); this env's mode is "
                             f"{base.mode.name!r}, whose mask is already one flat vector")
        spaces = dict(env.observation_space.spaces)
        spaces["action_mask"] = gym.spaces.Box(0, 1, shape=(base.config.window, 3), dtype=bool)
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        observation = dict(observation)
        observation["action_mask"] = observation["action_mask"].astype(bool).reshape(-1, 3)
        return observation


class ScalarInfo(_MaskForwarding, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``info`` with exactly the scalar keys of :data:`SCALAR_INFO_KEYS` at every reset and step.

    :param details: also keep the env's full info (nested dicts, lists, the mask) under ``info["details"]``,
        which breaks the fixed schema for those who ask for it.
    """

    def __init__(self, env: gym.Env, details: bool = False):
        gym.utils.RecordConstructorArgs.__init__(self, details=details)
        gym.Wrapper.__init__(self, env)
        self._base = _infermax(env)
        self.details = details
        self._num_requests = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        self._num_requests = info["num_requests"]
        return observation, self._scalars(info)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, reward, terminated, truncated, self._scalars(info)

    def _scalars(self, info: dict[str, Any]) -> dict[str, Any]:
        scalars: dict[str, Any] = scalar_info(info, self._num_requests, self._base.reference_objective)
        if self.details:
            scalars["details"] = info
        return scalars
