"""Train InferMax agents with RLlib (new API stack) across EnvRunners.

Importing this module registers ``InferMax-v0`` and ``InferMax-Tiny-v0`` in Ray Tune's env registry, which
Ray ships to every EnvRunner, so ``config.environment("InferMax-Tiny-v0")`` works on remote workers that never
imported :mod:`infermax_env` themselves. The registered creator returns the RLlib observation format,
:class:`~infermax_env.wrappers.FlatObservation` ``{"observations", "action_mask"}`` (float32 mask), with the
fixed-schema :class:`~infermax_env.wrappers.ScalarInfo`; ``env_config`` holds the env keywords (settings by name:
``{"action_mode": "sequential", "objective": "gpu_time"}``). A ``reference`` scheduler given by name resolves only
where :mod:`baselines` was imported; on EnvRunners pass its class (``reference=VLLMScheduler``), which imports it.

:func:`masked_ppo_config` is RLlib's PPO with its action-masking RLModule (``ActionMaskingTorchRLModule``,
which adds ``log(mask)`` to the logits; for ``MultiDiscrete`` actions the flat (3K,) mask lines up with the
concatenated per-slot logits). Needs the ``[rllib]`` extra.

On a multi-node cluster, start Ray there (``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on
the others, each with ``pip install 'infermax-env[rllib]'``), then call ``ray.init(address="auto")`` (or set
``RAY_ADDRESS``) before building the algorithm; ``num_env_runners`` spreads over the nodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from .extras import require

require("rllib", "infermax_env.rllib")

from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402
from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule  # noqa: E402
from ray.tune.registry import register_env  # noqa: E402

from . import envs  # noqa: E402
from .wrappers import FlatObservation, ScalarInfo  # noqa: E402


def make_env(env_id: str, env_config: dict[str, Any] | None = None) -> gym.Env:
    """``env_id`` with the ``env_config`` keywords, in RLlib's masked observation format."""
    return FlatObservation(ScalarInfo(gym.make(env_id, **dict(env_config or {}))))


def register_rllib_envs() -> None:
    """Register the InferMax ids with Ray Tune (the names RLlib resolves before Gymnasium's)."""
    for env_id in envs.ENV_IDS:
        register_env(env_id, lambda env_config, env_id=env_id: make_env(env_id, env_config))


def masked_ppo_config(env_id: str = "InferMax-Tiny-v0", env_config: dict[str, Any] | None = None,
                      num_env_runners: int = 2, num_envs_per_env_runner: int = 1, train_batch_size: int = 2000,
                      minibatch_size: int = 250, num_epochs: int = 4, hidden: tuple[int, ...] = (128, 128),
                      seed: int = 0) -> PPOConfig:
    """PPO with invalid-action masking on ``env_id`` (RLlib new API stack), ``num_env_runners`` remote
    EnvRunners (0 samples in the driver)."""
    return (
        PPOConfig()
        .environment(env_id, env_config=dict(env_config or {}))
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner)
        .training(train_batch_size_per_learner=train_batch_size, minibatch_size=minibatch_size,
                  num_epochs=num_epochs)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=ActionMaskingTorchRLModule,
                                               model_config={"head_fcnet_hiddens": list(hidden)}))
        .debugging(seed=seed)
    )


register_rllib_envs()
