"""Gymnasium environments over the simulator core (the only part of infermax_env that imports Gymnasium).

Importing :mod:`infermax_env` registers:

* ``InferMax-v0``: Llama-3-70B TP 4 on A100 80GB, LinearCostModel, M = 100,000, C = 16,384, windows of 256
  Azure conv-trace requests (synthetic stand-in without the trace), K = 64, TimeLimit 100,000 steps;
* ``InferMax-Tiny-v0``: :func:`infermax_env.instances.tiny_setting` instances, K = 12, TimeLimit 2,000 steps.

Both accept every keyword of :class:`InferMaxEnv` through ``gymnasium.make(id, **kwargs)``. See docs/env.md.
"""

import gymnasium as gym

from .actions import InvalidActionError, NotExpressibleError, Repairs, livelock_decision
from .config import PRESET_MAX_EPISODE_STEPS, EnvConfig, PredictorHook, build_config
from .observation import GLOBAL_FEATURES, GLOBAL_INDEX, REQUEST_FEATURES, REQUEST_INDEX
from .scheduling_env import InferMaxEnv
from .window import Window

ENV_IDS = {"InferMax-v0": "default", "InferMax-Tiny-v0": "tiny"}


def register_envs() -> None:
    """Register the InferMax ids with Gymnasium (idempotent)."""
    for env_id, preset in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="infermax_env.envs.scheduling_env:InferMaxEnv",
                         vector_entry_point="infermax_env.vector:InferMaxVectorEnv",
                         kwargs={"preset": preset}, max_episode_steps=PRESET_MAX_EPISODE_STEPS[preset])


register_envs()

__all__ = ["ENV_IDS", "EnvConfig", "GLOBAL_FEATURES", "GLOBAL_INDEX", "InferMaxEnv", "InvalidActionError",
           "NotExpressibleError", "PredictorHook", "REQUEST_FEATURES", "REQUEST_INDEX", "Repairs", "Window",
           "build_config", "livelock_decision", "register_envs"]
