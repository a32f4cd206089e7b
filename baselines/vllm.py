"""vLLM's default (v0, no chunked prefill) scheduler, as INFERMAX models it."""

from __future__ import annotations

from .builder import BatchBuilderScheduler
from .rules import ArrivalOrder, NewestEviction, PromptReservation


class VLLMScheduler(BatchBuilderScheduler):
    """FCFS, prefill-first, whole prompts, evict-newest on memory pressure (recompute).

    Each iteration:

    1. Prefill: walk waiting requests in arrival order (an evicted request keeps its arrival place) and admit
       each whose whole remaining prefill (prompt, plus generated tokens after an eviction) fits in the token
       budget, the batch size and the free KV memory (less the unfinished prefills of resident requests);
       stop at the first that does not (head-of-line blocking, as vLLM does). If any was admitted, the
       iteration is prefill-only. A prefill larger than the whole budget C runs in chunks of C (vLLM would
       reject it; chunking keeps every request served).
    2. Otherwise every resident request (in arrival order, within the budget and batch size) computes its
       next token (or next chunk of C); while that does not fit in memory, the newest-arriving resident
       request is evicted (never the last one).
    """

    name = "vllm"
    requires_oracle = False

    def __init__(self) -> None:
        super().__init__(order=ArrivalOrder(), eviction=NewestEviction(), reservation=PromptReservation(),
                         prefill_first=True, decodes_first=False, chunked=False)
