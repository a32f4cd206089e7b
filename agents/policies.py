"""Decima-style actor-critic policies: one shared network scores every request slot.

With :class:`~agents.extractors.SlotSetExtractor` each slot has an embedding that already saw the other slots
(through attention) and the engine state (through the global embedding). A small MLP shared across slots maps
``[slot embedding, pooled context]`` to that slot's action logits, so the policy is equivariant to the slot
order: permuting the requests permutes the action distribution the same way. Actions that are not tied to a
slot (``stop`` in the sequential mode) are scored from the pooled context alone. The value function reads the
pooled context only, which is invariant to the slot order.

How per-slot scores become the action-distribution parameters depends on the env's action space:

* ``MultiDiscrete([c] * K)`` ("select" mode): ``c`` logits per slot, slot-major (slot 0's ``c``, then slot
  1's, ...), as SB3's MultiCategorical expects.
* ``Discrete(c * K + e)`` ("sequential" mode, ``c = 2, e = 1``): action ``j * K + k`` is choice ``j`` for slot
  ``k``; the last ``e`` actions are slot-free and scored from the context.
* ``Box((K,))`` ("priority" mode): one Gaussian mean per slot (the log-std stays SB3's learned vector).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from .extractors import SlotSetExtractor


def action_layout(action_space: gym.spaces.Space, num_slots: int) -> tuple[int, int, bool]:
    """``(choices per slot, slot-free actions, slot_major)`` for an InferMax action space with K slots."""
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec).reshape(-1)
        if len(nvec) != num_slots or len(set(nvec.tolist())) != 1:
            raise ValueError(f"a slot-scoring policy needs MultiDiscrete([c] * {num_slots}), got nvec {nvec.tolist()}")
        return int(nvec[0]), 0, True
    if isinstance(action_space, gym.spaces.Discrete):
        n = int(action_space.n)
        per_slot, extra = divmod(n, num_slots)
        if per_slot < 1:
            raise ValueError(f"Discrete({n}) has fewer actions than the {num_slots} slots")
        return per_slot, extra, False
    if isinstance(action_space, gym.spaces.Box):
        if action_space.shape != (num_slots,):
            raise ValueError(f"a slot-scoring policy needs Box(({num_slots},)), got shape {action_space.shape}")
        return 1, 0, True
    raise TypeError(f"no slot-scoring layout for action space {action_space}")


class SlotScoringHead(nn.Module):
    """The ``mlp_extractor`` of a slot-scoring policy: its actor latent *is* the action-distribution input.

    :param extractor: the policy's :class:`SlotSetExtractor` (its geometry splits the flat features).
    :param action_space: the env's action space (see :func:`action_layout`).
    :param hidden: width of the per-slot scorer and of the value MLP.
    """

    def __init__(self, extractor: SlotSetExtractor, action_space: gym.spaces.Space, hidden: int = 64):
        super().__init__()
        self.extractor = [extractor]  # a list: read its geometry without registering it as a submodule twice
        k, d = extractor.num_slots, extractor.embed_dim
        self.per_slot, self.extra, self.slot_major = action_layout(action_space, k)
        self.slot_scorer = nn.Sequential(nn.Linear(4 * d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                         nn.Linear(hidden, self.per_slot))
        self.extra_scorer = (nn.Sequential(nn.Linear(3 * d, hidden), nn.ReLU(), nn.Linear(hidden, self.extra))
                             if self.extra else None)
        self.value_body = nn.Sequential(nn.Linear(3 * d, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.latent_dim_pi = k * self.per_slot + self.extra
        self.latent_dim_vf = hidden

    def output_layers(self) -> list[nn.Linear]:
        """The last layers that produce action scores (initialised small, as SB3 does for ``action_net``)."""
        layers = [self.slot_scorer[-1]]
        if self.extra_scorer is not None:
            layers.append(self.extra_scorer[-1])
        return layers

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        context, slots, _ = self.extractor[0].unpack(features)
        k = slots.shape[1]
        paired = th.cat([slots, context.unsqueeze(1).expand(-1, k, -1)], dim=-1)
        scores = self.slot_scorer(paired)  # (B, K, c)
        flat = scores.reshape(scores.shape[0], -1) if self.slot_major else scores.transpose(1, 2).reshape(
            scores.shape[0], -1)
        if self.extra_scorer is not None:
            flat = th.cat([flat, self.extra_scorer(context)], dim=1)
        return flat

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_body(self.extractor[0].unpack(features).context)


class _SlotScoringMixin:
    """Replaces SB3's MLP trunk and ``action_net`` with :class:`SlotScoringHead`."""

    def _build_mlp_extractor(self) -> None:
        if not isinstance(self.features_extractor, SlotSetExtractor):
            raise TypeError(f"slot-scoring policies need features_extractor_class=SlotSetExtractor, got "
                            f"{type(self.features_extractor).__name__}")
        self.mlp_extractor = SlotScoringHead(self.features_extractor, self.action_space, self.score_hidden)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()
        if self.ortho_init:
            for layer in self.mlp_extractor.output_layers():
                self.init_weights(layer, gain=0.01)
        # the optimizer built by SB3 holds the discarded action_net: rebuild it over the live parameters
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


def _slot_policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("features_extractor_class", SlotSetExtractor)
    if not kwargs.get("share_features_extractor", True):
        raise ValueError("slot-scoring policies share one features extractor between actor and critic")
    return kwargs


class SlotScoringPolicy(_SlotScoringMixin, ActorCriticPolicy):
    """PPO/A2C policy scoring each request slot with one shared network (see module docstring).

    :param score_hidden: width of the per-slot scorer and the value MLP. Other arguments as
        :class:`~stable_baselines3.common.policies.ActorCriticPolicy`; the features extractor defaults to
        :class:`~agents.extractors.SlotSetExtractor`.
    """

    def __init__(self, *args, score_hidden: int = 64, **kwargs):
        self.score_hidden = score_hidden
        super().__init__(*args, **_slot_policy_kwargs(kwargs))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "score_hidden": self.score_hidden}


class MaskableSlotScoringPolicy(_SlotScoringMixin, MaskableActorCriticPolicy):
    """MaskablePPO version of :class:`SlotScoringPolicy` (invalid actions masked via ``action_masks()``)."""

    def __init__(self, *args, score_hidden: int = 64, **kwargs):
        self.score_hidden = score_hidden
        super().__init__(*args, **_slot_policy_kwargs(kwargs))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "score_hidden": self.score_hidden}


__all__ = ["MaskableSlotScoringPolicy", "SlotScoringHead", "SlotScoringPolicy", "action_layout"]
