"""The contents of one iteration, as arrays, the form every cost model prices."""

from __future__ import annotations

import numpy as np

_EMPTY = np.zeros(0, dtype=np.int64)  # writable (it has no element to write): cost model kernels take it as is


class Batch:
    """One iteration's work.

    Attributes:
        prefill_new: new tokens of each prefill chunk.
        prefill_cached: tokens of that request already in the KV cache when the chunk runs.
        decode_context: KV tokens each decode reads (its context before this step's token).
        prefill_samples: how many prefill chunks finish their prefill and sample a token (LM head).
    """

    __slots__ = ("prefill_new", "prefill_cached", "decode_context", "prefill_samples")

    def __init__(self, prefill_new: np.ndarray = _EMPTY, prefill_cached: np.ndarray = _EMPTY,
                 decode_context: np.ndarray = _EMPTY, prefill_samples: int = 0):
        self.prefill_new = prefill_new
        self.prefill_cached = prefill_cached
        self.decode_context = decode_context
        self.prefill_samples = prefill_samples

    def __repr__(self) -> str:
        return (f"Batch(prefills={list(zip(self.prefill_new.tolist(), self.prefill_cached.tolist()))}, "
                f"decodes={self.decode_context.tolist()}, prefill_samples={self.prefill_samples})")

    @classmethod
    def of(cls, prefills: list[tuple[int, int]] | tuple = (), decodes: list[int] | tuple = (),
           prefill_samples: int | None = None) -> "Batch":
        """Build from ``[(new, cached), ...]`` and ``[context, ...]``; every prefill samples unless told."""
        pairs = np.asarray(prefills, dtype=np.int64).reshape(-1, 2)
        return cls(pairs[:, 0].copy(), pairs[:, 1].copy(), np.asarray(decodes, dtype=np.int64).reshape(-1),
                   len(pairs) if prefill_samples is None else prefill_samples)

    @property
    def num_prefills(self) -> int:
        return len(self.prefill_new)

    @property
    def num_decodes(self) -> int:
        return len(self.decode_context)

    @property
    def num_requests(self) -> int:
        return len(self.prefill_new) + len(self.decode_context)

    @property
    def num_tokens(self) -> int:
        return int(self.prefill_new.sum()) + len(self.decode_context)

    @property
    def is_empty(self) -> bool:
        return self.num_requests == 0
