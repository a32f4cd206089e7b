"""TorchRL pieces for masked PPO on InferMax's select mode (``MultiDiscrete([3] * K)``).

TorchRL turns ``MultiDiscrete([3] * K)`` into a one-hot ``(K, 3)`` action. :func:`make_env` gives the env in that
form with the per-slot ``(K, 3)`` mask (:class:`~infermax_env.wrappers.SlotMask`) applied by TorchRL's
``ActionMask`` transform, a fixed-schema info (:class:`~infermax_env.wrappers.ScalarInfo`), and TorchRL's usual
flat ``"observation"`` key (the request rows, row by row, then the global features) next to the Dict's keys.
:class:`SlotwiseMaskedOneHot` is the policy's distribution: TorchRL's ``MaskedOneHotCategorical`` returns one
log-probability per slot, while PPO's ratio needs the joint action's, so this one sums over the slots (the slots
are sampled independently). Needs the ``[torchrl]`` extra::

    env = make_env("InferMax-Tiny-v0")
    actor = ProbabilisticActor(module, in_keys={"logits": "logits", "mask": "action_mask"},
                               spec=env.action_spec, distribution_class=SlotwiseMaskedOneHot)
"""

from __future__ import annotations

import gymnasium as gym

from .extras import require

require("torchrl", "infermax_env.torchrl_support")

import torch  # noqa: E402
from torchrl.envs import ActionMask, CatTensors, Compose, FlattenObservation, GymWrapper, TransformedEnv  # noqa: E402
from torchrl.modules import MaskedOneHotCategorical  # noqa: E402

from . import envs  # noqa: E402,F401  (registers the ids)
from .wrappers import ScalarInfo, SlotMask  # noqa: E402


class SlotwiseMaskedOneHot(MaskedOneHotCategorical):
    """One masked categorical per slot over the last axis; log-probability and entropy of the joint action
    (summed over the slot axis), so a ``(..., K, 3)`` action has a ``(...)`` log-probability."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value).sum(-1)

    def entropy(self) -> torch.Tensor:
        return super().entropy().sum(-1)


def make_env(env_id: str = "InferMax-Tiny-v0", **env_kwargs) -> TransformedEnv:
    """``gym.make(env_id, **env_kwargs)`` (select mode; ``SlotMask`` rejects the others) as a TorchRL env with
    the ``(K, 3)`` mask under ``"action_mask"``, enforced by ``ActionMask``, and the flat float32
    ``"observation"`` (``requests`` flattened, then ``global``)."""
    return TransformedEnv(GymWrapper(SlotMask(ScalarInfo(gym.make(env_id, **env_kwargs)))), Compose(
        ActionMask(),
        FlattenObservation(-2, -1, in_keys=["requests"], out_keys=["requests_flat"]),
        CatTensors(in_keys=["requests_flat", "global"], out_key="observation", del_keys=False, sort=False)))
