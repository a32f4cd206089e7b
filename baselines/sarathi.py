"""Sarathi-Serve's stall-free batching with chunked prefills."""

from __future__ import annotations

from .builder import BatchBuilderScheduler
from .rules import ArrivalOrder, NewestEviction, PromptReservation


class SarathiScheduler(BatchBuilderScheduler):
    """Sarathi-Serve: every iteration mixes decodes and prefill chunks under one token budget.

    Per iteration the budget ``min(C, chunk_size)`` goes, in this order, to every decode (1 token each, in
    arrival order), then to resident requests with an unfinished prefill (arrival order), then to waiting
    requests in arrival order, each new prefill chunked to what is left of the budget. A waiting request is
    admitted only while its whole remaining prefill fits in the free KV memory beside the unfinished prefills
    of resident requests (stop at the first that does not). When the running work does not fit in memory,
    the newest resident request is evicted (recompute), as in vLLM.

    Args:
        chunk_size: per-iteration token budget (Sarathi-Serve's chunk size, 512 in its paper); None uses the
            engine's C, as INFERMAX's setting does.
    """

    name = "sarathi"
    requires_oracle = False

    def __init__(self, chunk_size: int | None = None) -> None:
        super().__init__(order=ArrivalOrder(), eviction=NewestEviction(), reservation=PromptReservation(),
                         decodes_first=True, chunked=True, chunk_size=chunk_size)
