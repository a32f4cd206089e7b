"""INFERMAX's own scheduler: Sarathi structure, Shortest-Request-First service and eviction, and a
histogram reservation."""

from __future__ import annotations

from .builder import BatchBuilderScheduler
from .rules import FewestComputedEviction, HistogramReservation, MostComputedOrder


class InferMaxScheduler(BatchBuilderScheduler):
    """Sarathi-Serve's batch structure with INFERMAX's SRF rules.

    Per iteration: decodes, then resident requests with an unfinished prefill, then waiting requests, each
    group serving the request with the most computed tokens (KV) first (waiting requests hold none and go in
    arrival order); new prefills are chunked to what is left of the budget ``min(C, chunk_size)``. A waiting
    request is admitted only if max(I + generated, mean I + O - 1 of the finished requests in its
    floor(log2 I) prompt bucket) KV tokens fit beside the outstanding reservations of the resident requests.
    When the running work does not fit in memory, the resident request with the fewest computed tokens is
    evicted first (it loses the least work).

    Args:
        chunk_size: per-iteration token budget; None uses the engine's C.
    """

    name = "infermax"
    requires_oracle = False

    def __init__(self, chunk_size: int | None = None) -> None:
        super().__init__(order=MostComputedOrder(), eviction=FewestComputedEviction(),
                         reservation=HistogramReservation(), decodes_first=True, chunked=True, chunk_size=chunk_size)
