"""A model placed on GPUs, the KV-cache capacity it leaves, and the engine limits a scheduler works under."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DeploymentError
from .hardware import GPUSpec, get_gpu
from .models import ModelSpec, get_model

GIB = 1024**3


@dataclass(frozen=True)
class Deployment:
    """``model`` sharded over ``tensor_parallel`` GPUs of type ``gpu``.

    KV capacity (tokens) = ``(utilisation * total GPU memory - weights - activation reserve) / KV bytes
    per token``, the way vLLM sizes its cache with ``gpu_memory_utilization``. Raises
    :class:`DeploymentError` with the numbers when the weights do not fit.
    """

    model: ModelSpec
    gpu: GPUSpec
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.9
    activation_reserve_bytes_per_gpu: float = 2 * GIB

    def __init__(self, model: ModelSpec | str, gpu: GPUSpec | str, tensor_parallel: int = 1,
                 gpu_memory_utilization: float = 0.9, activation_reserve_bytes_per_gpu: float = 2 * GIB):
        object.__setattr__(self, "model", get_model(model))
        object.__setattr__(self, "gpu", get_gpu(gpu))
        object.__setattr__(self, "tensor_parallel", tensor_parallel)
        object.__setattr__(self, "gpu_memory_utilization", gpu_memory_utilization)
        object.__setattr__(self, "activation_reserve_bytes_per_gpu", activation_reserve_bytes_per_gpu)
        if not isinstance(tensor_parallel, int) or tensor_parallel < 1:
            raise DeploymentError(f"tensor_parallel must be a positive integer, got {tensor_parallel!r}")
        if self.model.num_heads % tensor_parallel or self.model.num_kv_heads % tensor_parallel and \
                tensor_parallel % self.model.num_kv_heads:
            raise DeploymentError(
                f"{self.model.name}: {self.model.num_heads} heads / {self.model.num_kv_heads} KV heads cannot be "
                f"split over tensor_parallel={tensor_parallel}")
        if not 0 < gpu_memory_utilization <= 1:
            raise DeploymentError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
        if self.kv_cache_bytes <= 0:
            raise DeploymentError(
                f"{self.model.name} does not fit on {tensor_parallel} x {self.gpu.name}: weights need "
                f"{self.model.param_bytes / GIB:.1f} GiB + activation reserve "
                f"{tensor_parallel * activation_reserve_bytes_per_gpu / GIB:.1f} GiB, usable memory is "
                f"{self.usable_bytes / GIB:.1f} GiB ({gpu_memory_utilization:.0%} of "
                f"{tensor_parallel * self.gpu.memory_bytes / GIB:.1f} GiB)")

    @property
    def usable_bytes(self) -> float:
        return self.gpu_memory_utilization * self.tensor_parallel * self.gpu.memory_bytes

    @property
    def kv_cache_bytes(self) -> float:
        return (self.usable_bytes - self.model.param_bytes
                - self.tensor_parallel * self.activation_reserve_bytes_per_gpu)

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache that fit across the tensor-parallel group."""
        return int(self.kv_cache_bytes // self.model.kv_bytes_per_token)


MAX_LIMIT = 2**62
"""Largest engine limit accepted: sums of KV tokens must stay within the simulator's int64 counters."""


@dataclass(frozen=True)
class EngineConfig:
    """The limits every scheduling decision is checked against.

    Attributes:
        kv_capacity: M, KV-cache capacity in tokens (a multiple of ``block_size`` is used: M // block_size blocks).
        token_budget: C, the most tokens (prefill chunks + decodes) one iteration may compute.
        max_batch_size: the most requests one iteration may compute tokens for.
        block_size: paged-KV block size in tokens; each resident request holds ceil(kv / block_size) blocks.
    """

    kv_capacity: int = 100_000
    token_budget: int = 16_384
    max_batch_size: int = 1_000_000
    block_size: int = 1

    def __post_init__(self) -> None:
        for name in ("kv_capacity", "token_budget", "max_batch_size", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
                raise DeploymentError(f"EngineConfig.{name} must be a positive integer, got {value!r}")
            if value > MAX_LIMIT:
                raise DeploymentError(f"EngineConfig.{name}={value} is too large: at most {MAX_LIMIT} (2**62, the "
                                      f"simulator counts in int64)")
            object.__setattr__(self, name, int(value))  # numpy integers become plain ints
        if self.block_size > self.kv_capacity:
            raise DeploymentError(
                f"block_size={self.block_size} is larger than kv_capacity={self.kv_capacity}")

    @property
    def num_blocks(self) -> int:
        return self.kv_capacity // self.block_size

    def kv_shortfall(self, tokens: int) -> str:
        """Why ``tokens`` KV tokens do not fit in M, saying when rounding to whole blocks is the cause."""
        if self.block_size == 1:
            return f"{tokens} KV tokens, more than the KV capacity M = {self.kv_capacity}"
        needed = self.blocks(tokens)
        return (f"{tokens} KV tokens, which take {needed} blocks of {self.block_size} "
                f"({needed * self.block_size} tokens), more than the {self.num_blocks} whole blocks "
                f"({self.num_blocks * self.block_size} tokens) the KV capacity M = {self.kv_capacity} holds")

    def blocks(self, tokens: np.ndarray | int) -> np.ndarray | int:
        """KV blocks holding ``tokens`` tokens (elementwise on arrays): ``ceil(tokens / block_size)``."""
        return tokens if self.block_size == 1 else -(-tokens // self.block_size)

    @classmethod
    def for_deployment(cls, deployment: Deployment, **limits: int) -> "EngineConfig":
        """Limits with ``kv_capacity`` taken from the deployment's free memory."""
        return cls(kv_capacity=deployment.kv_capacity_tokens, **limits)
