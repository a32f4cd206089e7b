"""GPU specifications from datasheets (dense BF16/FP16 tensor throughput, HBM bandwidth, memory).

Define a new GPU by constructing :class:`GPUSpec` and, optionally, :func:`register_gpu` it so that it can be
named in configs and ``gymnasium.make`` kwargs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry

TERA = 1e12
GIGA = 1e9


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet numbers of one GPU.

    Attributes:
        name: registry name, e.g. ``"a100-80gb"``.
        peak_flops: dense BF16 (or FP16 tensor) FLOP/s, not the 2x sparse figure.
        memory_bandwidth: HBM bytes/s.
        memory_bytes: device memory in bytes.
        interconnect_bandwidth: per-GPU bytes/s of the GPU-GPU link used for all-reduce (NVLink, or PCIe
            when there is none).
    """

    name: str
    peak_flops: float
    memory_bandwidth: float
    memory_bytes: float
    interconnect_bandwidth: float

    def __post_init__(self) -> None:
        for field in ("peak_flops", "memory_bandwidth", "memory_bytes", "interconnect_bandwidth"):
            value = getattr(self, field)
            if not value > 0:
                raise ValueError(f"GPUSpec {self.name!r}: {field} must be positive, got {value!r}")


PCIE_GEN4_X16 = 32 * GIGA
PCIE_GEN5_X16 = 64 * GIGA

_GPUS: Registry[GPUSpec] = Registry("GPU", GPUSpec)


def register_gpu(spec: GPUSpec, *, overwrite: bool = False) -> GPUSpec:
    """Add ``spec`` to the registry under ``spec.name``."""
    return _GPUS.register(spec, overwrite=overwrite)


def get_gpu(name: str | GPUSpec) -> GPUSpec:
    """Look up a GPU by registry name (a :class:`GPUSpec` is returned unchanged)."""
    return _GPUS.get(name)


def list_gpus() -> list[str]:
    return _GPUS.names()


for _spec in (
    GPUSpec("a100-80gb", 312 * TERA, 2.039 * TERA, 80 * GIGA, 600 * GIGA),
    GPUSpec("a100-40gb", 312 * TERA, 1.555 * TERA, 40 * GIGA, 600 * GIGA),
    GPUSpec("h100-sxm", 989 * TERA, 3.35 * TERA, 80 * GIGA, 900 * GIGA),
    GPUSpec("h100-pcie", 756 * TERA, 2.0 * TERA, 80 * GIGA, PCIE_GEN5_X16),
    GPUSpec("h200", 989 * TERA, 4.8 * TERA, 141 * GIGA, 900 * GIGA),
    GPUSpec("a40", 149.7 * TERA, 0.696 * TERA, 48 * GIGA, 112.5 * GIGA),
    GPUSpec("l40s", 362 * TERA, 0.864 * TERA, 48 * GIGA, PCIE_GEN4_X16),
):
    register_gpu(_spec)
