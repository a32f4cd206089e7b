"""Tianshou pieces for masked PPO on InferMax's sequential mode (``Discrete(2K + 1)``).

Tianshou's categorical PPO policy wants a ``Discrete`` action and does not read an action mask itself (only its
DQN family does). :func:`make_env` gives the sequential-mode env with Tianshou's ``{"obs", "mask"}`` observation
(:class:`~infermax_env.wrappers.FlatObservation`, bool mask) and a fixed-schema info the replay buffer can store
(:class:`~infermax_env.wrappers.ScalarInfo`); :class:`MaskedActor` wraps any network of the flat observation
into an actor whose masked logits are ``-inf`` (probability 0), and :class:`Critic` a value network of it.
Needs the ``[tianshou]`` extra::

    env = make_env("InferMax-Tiny-v0")
    policy = DiscreteActorPolicy(actor=MaskedActor(net), action_space=env.action_space)
    algorithm = PPO(policy=policy, critic=Critic(value_net), optim=AdamOptimizerFactory(lr=3e-4))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from .extras import require

require("tianshou", "infermax_env.tianshou_support")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from . import envs  # noqa: E402,F401  (registers the ids)
from .wrappers import FlatObservation, ScalarInfo  # noqa: E402


def make_env(env_id: str = "InferMax-Tiny-v0", **env_kwargs) -> gym.Env:
    """``gym.make(env_id, action_mode="sequential", **env_kwargs)`` with ``{"obs": flat float32, "mask": bool}``
    observations and the scalar info."""
    env = gym.make(env_id, **{"action_mode": "sequential", **env_kwargs})
    return FlatObservation(ScalarInfo(env), "obs", "mask", "bool")


class MaskedActor(nn.Module):
    """Tianshou actor: ``net(obs.obs)`` gives the logits, those of actions masked off in ``obs.mask`` are ``-inf``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        logits = self.net(torch.as_tensor(obs.obs, dtype=torch.float32))
        mask = torch.as_tensor(obs.mask, dtype=torch.bool, device=logits.device)
        return logits.masked_fill(~mask, float("-inf")), state


class Critic(nn.Module):
    """Tianshou critic: ``net(obs.obs)``, the value of the flat observation (the mask is not an input)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, obs: Any, **kwargs: Any) -> torch.Tensor:
        return self.net(torch.as_tensor(obs.obs, dtype=torch.float32))
