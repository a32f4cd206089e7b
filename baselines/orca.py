"""Orca's iteration-level batching and the static (request-level) batching of FasterTransformer."""

from __future__ import annotations

import numpy as np

from infermax_env.simulator import Simulator

from .builder import BatchBuilderScheduler
from .rules import ArrivalOrder, CapReservation, NewestEviction
from .tracking import NO_IDS, StepEvents


class OrcaScheduler(BatchBuilderScheduler):
    """Orca: iteration-level batching without chunked prefills.

    Every iteration walks all requests in arrival order: resident requests compute their next token, waiting
    requests their whole prompt (a prompt larger than C in chunks of C), until the first request that no
    longer fits in the token budget C or the batch size. Like Orca, a request's KV is sized for its maximum
    length at admission: a waiting request is admitted only if I + max_tokens - 1 tokens (at most M) fit
    beside the reservations of the resident ones, so it never evicts while outputs stay within
    ``max_tokens``; a longer output falls back to evicting the newest request.

    Args:
        max_tokens: the output-length cap KV is reserved for.
        max_batch: most requests per iteration (Orca's max batch size); None for the engine's limit.
    """

    name = "orca"
    requires_oracle = False

    def __init__(self, max_tokens: int = 2048, max_batch: int | None = None) -> None:
        super().__init__(order=ArrivalOrder(), eviction=NewestEviction(), reservation=CapReservation(max_tokens),
                         decodes_first=False, chunked=False, max_batch=max_batch)


class StaticBatchScheduler(BatchBuilderScheduler):
    """Static (request-level) batching, FasterTransformer's baseline.

    When no request of the current batch is unfinished, a new batch is formed from the head of the waiting
    queue in arrival order: as many requests as fit I + max_tokens - 1 KV tokens each (at most M) in the
    whole cache, up to ``max_batch``. Its prompts run (whole, in arrival order, as many per iteration as fit
    in C), then its requests decode together; finished requests leave, nobody joins, and the next batch
    starts only when the last member finishes. Outputs longer than ``max_tokens`` fall back to evicting the
    newest member.

    Args:
        max_tokens: the output-length cap KV is reserved for.
        max_batch: most requests per batch.
    """

    name = "static"
    requires_oracle = False

    def __init__(self, max_tokens: int = 2048, max_batch: int = 256) -> None:
        super().__init__(order=ArrivalOrder(), eviction=NewestEviction(), reservation=CapReservation(max_tokens),
                         decodes_first=True, chunked=False, max_batch=max_batch)
        self._members = NO_IDS

    def reset(self, sim: Simulator) -> None:
        super().reset(sim)
        self._members = NO_IDS

    def observe(self, sim: Simulator, events: StepEvents) -> None:
        if len(self._members) and sim.finished[self._members].all():
            self._members = NO_IDS

    def waiting_candidates(self, sim: Simulator, count: int) -> np.ndarray:
        if not len(self._members):
            if sim.resident:
                return NO_IDS
            head = super().waiting_candidates(sim, self._slots(sim))
            self._members = head[:self._admissible(sim, head, sim.config.num_blocks)]
        waiting = self._members[self._queue.member[self._members]]
        return waiting[:count]
