"""A roofline GPU cost model built from model shapes and datasheet numbers.

Every kernel of an iteration is priced as a roofline term: its FLOPs over the achieved compute rate and
its bytes over the achieved memory bandwidth, combined by a smooth maximum (a p-norm, which is the hard
maximum for p -> infinity and lets the two overlap imperfectly near the ridge point), plus a fixed
per-kernel launch latency. The efficiency constants (:class:`RooflineParams`) are GPU independent: they
were fitted once on measured transformer layers of two GPUs (``benchmarks/calibrate_roofline.py``) so
that any other GPU is priced from its :class:`~infermax_env.hardware.GPUSpec` alone.

Components of :meth:`RooflineCostModel.breakdown` (seconds, summed by ``batch_time``):

* ``linear``: per layer the QKV, O, MLP up(+gate) and down GEMMs (sharded over tensor parallelism) and the
  memory-bound element-wise kernels (two fused residual-add + norm, rotary embedding, activation).
* ``attention``: one prefill kernel over all chunks (``4 * H * dh * (n * p + n^2 / 2)`` FLOPs per layer for
  ``n`` new tokens over ``p`` cached; it reads the cached KV and writes the new one) and one decode kernel
  (each decode reads its whole KV context); each a roofline term on the per-GPU head shard.
* ``lm_head``: a ``d x V/tp`` GEMM for every sequence that samples (decodes and ``batch.prefill_samples``).
* ``communication``: two ring all-reduces of the ``N x d`` activations per layer when ``tensor_parallel > 1``.
* ``overhead``: a fixed per-iteration CPU/launch cost (scheduling, input preparation, sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..batch import Batch
from ..hardware import GPUSpec, get_gpu
from ..models import ModelSpec, get_model
from .base import BREAKDOWN_KEYS, CostModel

Tokens = TypeVar("Tokens", int, float, np.ndarray)


@dataclass(frozen=True)
class RooflineParams:
    """GPU-independent constants of :class:`RooflineCostModel`.

    The first five were fitted by ``python benchmarks/calibrate_roofline.py`` (log-space least squares on
    Vidur's measured A100 80GB and A40 transformer layers, ``shared/calibration/linear_layers_measured.csv``);
    rerun it to refresh them. The last three are not in that data (it has no attention kernel, no
    all-reduce and no CPU side) and come from public measurements, cited per field.

    Attributes:
        compute_efficiency: achieved fraction of ``peak_flops`` by a large GEMM (also used for attention:
            FlashAttention-2's forward pass reaches a similar 50-73% of A100 peak).
        bandwidth_efficiency: achieved fraction of ``memory_bandwidth`` by a memory-bound kernel.
        kernel_launch_s: fixed latency added to every kernel (launch, tail and synchronisation).
        token_tile: GEMM row granularity; compute is paid for ``ceil(N / token_tile) * token_tile`` tokens
            (tile quantisation of the token dimension, the steps in the measured curves).
        overlap_exponent: ``p`` of the smooth maximum ``(compute^p + memory^p)^(1/p)``.
        link_efficiency: achieved fraction of ``interconnect_bandwidth`` by a ring all-reduce; nccl-tests
            reports a bus bandwidth of about 200-210 GB/s on 8 x A100 NVLink against the 600 GB/s
            datasheet figure (NVIDIA/nccl-tests issues 149 and 178).
        allreduce_latency_s: fixed cost of one all-reduce; vLLM's custom all-reduce takes about 9 us for
            small messages on H100 (sgl-project/sglang pull request 2904).
        iteration_overhead_s: per-iteration CPU cost not hidden behind the GPU (scheduling, input
            preparation, sampling). 1 ms is an estimate: vLLM v0.5 spent far more (its v0.6 blog: scheduling
            was 29% of a Llama-3-8B H100 step) and engines with asynchronous output processing hide most of
            it. With it, 16 decodes over 1,000-token contexts of Llama-3-8B on one H100 cost 8.9 ms, inside
            the 8-9 ms inter-token time reported for Llama-3.1-8B on one H100 at moderate load.
    """

    # Fitted by `python benchmarks/calibrate_roofline.py` on A100 80GB and A40 layers (errors: docs/figures.md).
    compute_efficiency: float = 0.7223
    bandwidth_efficiency: float = 0.831
    kernel_launch_s: float = 5.579e-06
    token_tile: int = 64
    overlap_exponent: float = 2.325
    link_efficiency: float = 0.35
    allreduce_latency_s: float = 10e-6
    iteration_overhead_s: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("compute_efficiency", "bandwidth_efficiency", "link_efficiency"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"RooflineParams.{name} must be in (0, 1], got {value!r}")
        for name in ("kernel_launch_s", "allreduce_latency_s", "iteration_overhead_s"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"RooflineParams.{name} must be >= 0, got {value!r}")
        if not isinstance(self.token_tile, (int, np.integer)) or self.token_tile < 1:
            raise ValueError(f"RooflineParams.token_tile must be a positive integer, got {self.token_tile!r}")
        if not self.overlap_exponent >= 1.0:
            raise ValueError(f"RooflineParams.overlap_exponent must be >= 1, got {self.overlap_exponent!r}")


@dataclass(frozen=True)
class ShardedLayer:
    """Per-GPU shapes of one transformer layer under tensor parallelism.

    Attributes:
        gemms: ``(in_features, out_features)`` of the QKV, O, MLP up(+gate) and down projections on one GPU.
        elementwise_bytes_per_token: bytes the memory-bound element-wise kernels move per token.
        elementwise_kernels: how many element-wise kernels run per layer.
        q_heads: query heads on one GPU.
        kv_bytes_per_token: KV-cache bytes of one token in this layer on one GPU.
        q_bytes_per_token: bytes of one token's query (equally its attention output) on one GPU.
    """

    gemms: tuple[tuple[int, int], ...]
    elementwise_bytes_per_token: float
    elementwise_kernels: int
    q_heads: float
    kv_bytes_per_token: float
    q_bytes_per_token: float

    @classmethod
    def of(cls, model: ModelSpec, tensor_parallel: int) -> "ShardedLayer":
        """Shard ``model``'s layer over ``tensor_parallel`` GPUs (KV heads are replicated when fewer than
        GPUs, as vLLM does)."""
        if not isinstance(tensor_parallel, (int, np.integer)) or tensor_parallel < 1:
            raise ValueError(f"tensor_parallel must be a positive integer, got {tensor_parallel!r}")
        if model.num_heads % tensor_parallel:
            raise ValueError(f"tensor_parallel={tensor_parallel} does not divide num_heads={model.num_heads} "
                             f"of model {model.name!r}")
        tp = tensor_parallel
        d, dh, ffn = model.hidden_size, model.head_dim, model.intermediate_size
        q_heads = model.num_heads / tp
        kv_heads = max(model.num_kv_heads / tp, 1.0)
        q_width = round(q_heads * dh)
        kv_width = round(kv_heads * dh)
        ffn_width = -(-ffn // tp)
        up_width = (2 if model.gated_mlp else 1) * ffn_width
        gemms = ((d, q_width + 2 * kv_width), (q_width, d), (d, up_width), (ffn_width, d))
        # Two fused residual-add + norm kernels (read x and residual, write both), rotary (read and write
        # q and k), activation (read the up projection, write ffn_width).
        elementwise_elements = 2 * 4 * d + 2 * (q_width + kv_width) + up_width + ffn_width
        return cls(gemms=gemms,
                   elementwise_bytes_per_token=float(elementwise_elements * model.dtype_bytes),
                   elementwise_kernels=4,
                   q_heads=q_heads,
                   kv_bytes_per_token=float(2 * kv_width * model.dtype_bytes),
                   q_bytes_per_token=float(q_width * model.dtype_bytes))


def roofline_seconds(flops: Tokens, bytes_moved: Tokens, gpu: GPUSpec, params: RooflineParams) -> Tokens:
    """One kernel's time: smooth maximum of its compute and memory times plus the launch latency.

    Written with arithmetic operators only, so it takes scalars or numpy arrays alike.
    """
    compute = flops / (gpu.peak_flops * params.compute_efficiency)
    memory = bytes_moved / (gpu.memory_bandwidth * params.bandwidth_efficiency)
    p = params.overlap_exponent
    return (compute ** p + memory ** p) ** (1.0 / p) + params.kernel_launch_s


def gemm_seconds(tokens: Tokens, in_features: int, out_features: int, dtype_bytes: int, gpu: GPUSpec,
                 params: RooflineParams) -> Tokens:
    """A ``tokens x in_features`` by ``in_features x out_features`` GEMM: compute on the tile-rounded token
    count, memory for the weights plus the input and output activations."""
    tile = params.token_tile
    padded_tokens = -(-tokens // tile) * tile
    flops = 2.0 * padded_tokens * in_features * out_features
    bytes_moved = dtype_bytes * (in_features * out_features + tokens * (in_features + out_features))
    return roofline_seconds(flops, bytes_moved, gpu, params)


def linear_layer_seconds(tokens: Tokens, layer: ShardedLayer, dtype_bytes: int, gpu: GPUSpec,
                         params: RooflineParams) -> Tokens:
    """Seconds of one layer's non-attention kernels for ``tokens`` tokens (scalar or array, > 0)."""
    total = sum(gemm_seconds(tokens, k, n, dtype_bytes, gpu, params) for k, n in layer.gemms)
    elementwise_memory = tokens * layer.elementwise_bytes_per_token / (
        gpu.memory_bandwidth * params.bandwidth_efficiency)
    return total + elementwise_memory + layer.elementwise_kernels * params.kernel_launch_s


class RooflineCostModel(CostModel):
    """Roofline cost model of one model replica on ``tensor_parallel`` GPUs of one kind.

    Args:
        model: a registry name (:func:`~infermax_env.models.get_model`) or a :class:`ModelSpec`.
        gpu: a registry name (:func:`~infermax_env.hardware.get_gpu`) or a :class:`GPUSpec`.
        tensor_parallel: GPUs the model is sharded over; must divide the number of attention heads.
        params: efficiency constants; the defaults are the calibrated ones.

    Example:
        >>> cost = RooflineCostModel("llama-3-8b", "a100-80gb")
        >>> cost.batch_time(Batch.of(decodes=[1000] * 64))  # doctest: +SKIP
    """

    def __init__(self, model: str | ModelSpec, gpu: str | GPUSpec, tensor_parallel: int = 1,
                 params: RooflineParams = RooflineParams()):
        self.model = get_model(model)
        self.gpu = get_gpu(gpu)
        self.tensor_parallel = tensor_parallel
        self.params = params
        self.layer = ShardedLayer.of(self.model, tensor_parallel)
        m, g, p, tp = self.model, self.gpu, params, tensor_parallel
        self._layers = m.num_layers
        self._dtype = m.dtype_bytes
        self._vocab_shard = -(-m.vocab_size // tp)
        # Attention FLOPs per (n * p + n^2 / 2) unit, per layer and GPU; bytes per token per layer and GPU.
        self._attention_flops_unit = 4.0 * self.layer.q_heads * m.head_dim
        self._kv_bytes = self.layer.kv_bytes_per_token
        self._q_bytes = self.layer.q_bytes_per_token
        ring_factor = 2.0 * (tp - 1) / tp
        self._allreduce_s_per_token = (ring_factor * m.hidden_size * m.dtype_bytes
                                       / (g.interconnect_bandwidth * p.link_efficiency))
        self._allreduces_per_iteration = 2 * m.num_layers if tp > 1 else 0

    def __repr__(self) -> str:
        return (f"RooflineCostModel(model={self.model.name!r}, gpu={self.gpu.name!r}, "
                f"tensor_parallel={self.tensor_parallel}, params={self.params})")

    def _attention_seconds(self, new_tokens: int, new_squared: int, new_times_cached: int,
                           cached_tokens: int) -> float:
        """One attention kernel per layer over chunks with these sums of ``n``, ``n^2``, ``n * p``, ``p``:
        reads the queries and the cached KV, writes the outputs and the new KV."""
        flops = self._attention_flops_unit * (new_times_cached + 0.5 * new_squared)
        bytes_moved = 2 * new_tokens * self._q_bytes + (cached_tokens + 2 * new_tokens) * self._kv_bytes
        return roofline_seconds(flops, bytes_moved, self.gpu, self.params)

    def breakdown(self, batch: Batch) -> dict[str, float]:
        new, cached, context = batch.prefill_new, batch.prefill_cached, batch.decode_context
        num_decodes = len(context)
        prefill_tokens = int(new.sum())
        tokens = prefill_tokens + num_decodes
        if tokens == 0:
            return dict.fromkeys(BREAKDOWN_KEYS, 0.0)
        attention = 0.0
        if prefill_tokens:
            attention += self._attention_seconds(prefill_tokens, int(np.dot(new, new)), int(np.dot(new, cached)),
                                                 int(cached.sum()))
        if num_decodes:
            context_tokens = int(context.sum())
            attention += self._attention_seconds(num_decodes, num_decodes, context_tokens, context_tokens)
        samples = num_decodes + batch.prefill_samples
        lm_head = (gemm_seconds(samples, self.model.hidden_size, self._vocab_shard, self._dtype, self.gpu,
                                self.params) if samples else 0.0)
        communication = self._allreduces_per_iteration * (self.params.allreduce_latency_s
                                                          + tokens * self._allreduce_s_per_token)
        return {
            "linear": self._layers * float(linear_layer_seconds(tokens, self.layer, self._dtype, self.gpu,
                                                                self.params)),
            "attention": self._layers * attention,
            "lm_head": float(lm_head),
            "communication": communication,
            "overhead": self.params.iteration_overhead_s,
        }
