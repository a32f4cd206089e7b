"""Permutation-aware feature extraction for the InferMax Dict observation.

The env describes up to ``K`` requests as rows of ``obs["requests"]`` (shape ``(K, F)``) with
``obs["slot_mask"]`` (shape ``(K,)``, 1 for a slot holding a request) and engine-level features in
``obs["global"]`` (shape ``(G,)``). Which request lands in which slot carries no meaning, so the extractor
treats the rows as a set:

* one MLP encodes every valid slot (weights shared across slots);
* the global features are encoded and added to every slot embedding, so each slot sees the engine state;
* a masked multi-head self-attention layer lets every slot see the others (padding slots are never
  attended to), followed by a residual connection and layer norm;
* masked mean and max pooling summarise the set.

The output is one flat tensor, as SB3 expects: ``[context (3 * D), slot embeddings (K * D), slot mask (K)]``
where ``context = [mean pool, max pool, global embedding]``. Pooled context is invariant to slot order and
each slot embedding is equivariant to it; :meth:`SlotSetExtractor.unpack` splits the tensor again, which is
how the per-slot scoring heads in :mod:`agents.policies` read it.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import torch as th
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

REQUIRED_KEYS = ("requests", "slot_mask", "global")


class SlotFeatures(NamedTuple):
    """The extractor output split into its parts (batch dimension first)."""

    context: th.Tensor
    """(B, 3 * D) slot-order-invariant summary: masked mean pool, masked max pool, global embedding."""
    slots: th.Tensor
    """(B, K, D) per-slot embeddings (zero on padding slots)."""
    mask: th.Tensor
    """(B, K) boolean, True where the slot holds a request."""


def symlog(x: th.Tensor) -> th.Tensor:
    """``sign(x) * log(1 + |x|)``: compresses token counts and times of any scale into a trainable range."""
    return th.sign(x) * th.log1p(th.abs(x))


def _mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.ReLU())


class SlotSetExtractor(BaseFeaturesExtractor):
    """Deep-sets / masked-attention encoder of the env's request slots plus its global features.

    :param observation_space: the env's Dict observation space; needs Box keys ``requests`` (K, F),
        ``slot_mask`` (K,) and ``global`` (G,). Other keys (``action_mask``) are ignored here: masks enter
        through MaskablePPO.
    :param embed_dim: D, the width of slot and global embeddings.
    :param num_heads: attention heads (``embed_dim`` must be divisible by it); 0 disables attention, leaving
        a pure deep-sets encoder.
    :param symlog_inputs: pass features through :func:`symlog` first (robust to unnormalised counts).
    """

    def __init__(self, observation_space: gym.spaces.Dict, embed_dim: int = 64, num_heads: int = 4,
                 symlog_inputs: bool = True):
        num_slots, request_dim, global_dim = observation_dims(observation_space)
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        if num_heads < 0 or (num_heads and embed_dim % num_heads):
            raise ValueError(f"num_heads must be 0 or divide embed_dim={embed_dim}, got {num_heads}")
        super().__init__(observation_space, features_dim=3 * embed_dim + num_slots * embed_dim + num_slots)
        self.num_slots = num_slots
        self.embed_dim = embed_dim
        self.symlog_inputs = symlog_inputs
        self.slot_encoder = _mlp(request_dim, embed_dim, embed_dim)
        self.global_encoder = _mlp(global_dim, embed_dim, embed_dim)
        self.attention = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True) if num_heads else None
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        features = self.encode(observations)
        batch = features.mask.shape[0]
        return th.cat([features.context, features.slots.reshape(batch, -1), features.mask.float()], dim=1)

    def encode(self, observations: dict[str, th.Tensor]) -> SlotFeatures:
        """Slot embeddings, their mask and the pooled context, before flattening."""
        requests, global_features = observations["requests"], observations["global"]
        if self.symlog_inputs:
            requests, global_features = symlog(requests), symlog(global_features)
        mask = observations["slot_mask"] > 0.5
        global_embedding = self.global_encoder(global_features)
        slots = self.slot_encoder(requests) + global_embedding.unsqueeze(1)
        if self.attention is not None:
            slots = self.norm(slots + self._masked_attention(slots, mask))
        else:
            slots = self.norm(slots)
        slots = slots * mask.unsqueeze(-1)
        context = th.cat([masked_mean(slots, mask), masked_max(slots, mask), global_embedding], dim=1)
        return SlotFeatures(context, slots, mask)

    def _masked_attention(self, slots: th.Tensor, mask: th.Tensor) -> th.Tensor:
        # A row with no valid slot would attend to nothing (NaN); let it attend to everything instead, its
        # output is zeroed by the caller anyway.
        empty = ~mask.any(dim=1, keepdim=True)
        padding = ~(mask | empty)
        attended, _ = self.attention(slots, slots, slots, key_padding_mask=padding, need_weights=False)
        return attended

    def unpack(self, features: th.Tensor) -> SlotFeatures:
        """Split a flat tensor produced by :meth:`forward` back into its parts."""
        d, k = self.embed_dim, self.num_slots
        context = features[:, : 3 * d]
        slots = features[:, 3 * d: 3 * d + k * d].reshape(-1, k, d)
        mask = features[:, 3 * d + k * d:] > 0.5
        return SlotFeatures(context, slots, mask)


def masked_mean(slots: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Mean of ``slots`` (B, K, D) over valid slots; zero where none is valid."""
    weights = mask.unsqueeze(-1).float()
    return (slots * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_max(slots: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Max of ``slots`` (B, K, D) over valid slots; zero where none is valid."""
    filled = slots.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
    return th.where(mask.any(dim=1, keepdim=True), filled, th.zeros_like(filled))


def observation_dims(observation_space: gym.spaces.Space) -> tuple[int, int, int]:
    """``(K, F, G)`` of an InferMax Dict observation space; a clear error when the space is not one."""
    if not isinstance(observation_space, gym.spaces.Dict):
        raise TypeError(f"SlotSetExtractor needs a Dict observation space with keys {REQUIRED_KEYS}, "
                        f"got {type(observation_space).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in observation_space.spaces]
    if missing:
        raise KeyError(f"observation space lacks keys {missing}; it has {sorted(observation_space.spaces)}")
    requests = observation_space["requests"].shape
    slot_mask = observation_space["slot_mask"].shape
    global_shape = observation_space["global"].shape
    if len(requests) != 2 or slot_mask != (requests[0],) or len(global_shape) != 1:
        raise ValueError(f"expected requests (K, F), slot_mask (K,) and global (G,); got requests {requests}, "
                         f"slot_mask {slot_mask}, global {global_shape}")
    return int(requests[0]), int(requests[1]), int(global_shape[0])
