"""FastServe-style skip-join multi-level feedback queue."""

from __future__ import annotations

import numpy as np

from infermax_env.batch import Batch
from infermax_env.simulator import Simulator

from .builder import BatchBuilderScheduler, Order
from .rules import LowestPriorityEviction, PromptReservation
from .tracking import StepEvents

_LEVEL_STRIDE = float(2**32)


class SkipJoinMLFQOrder(Order):
    """Priority = (queue level, order of entering that level).

    Level k has quantum ``base_quantum * 2**k`` seconds. A new request skips the levels whose quantum is
    shorter than its prefill time (from the cost model: one prefill of I tokens). Every iteration a request
    runs in adds that iteration's batch time to its service at its level; when that service reaches the
    level's quantum the request moves one level down (to the back of that level).
    """

    def __init__(self, base_quantum: float | None = None, num_levels: int = 12):
        if base_quantum is not None and not base_quantum > 0:
            raise ValueError(f"base_quantum must be positive seconds or None, got {base_quantum!r}")
        if not isinstance(num_levels, (int, np.integer)) or num_levels < 1:
            raise ValueError(f"num_levels must be a positive integer, got {num_levels!r}")
        self.base_quantum = base_quantum
        self.num_levels = int(num_levels)

    def reset(self, sim: Simulator) -> None:
        n = sim.num_requests
        self.quantum0 = self.base_quantum or sim.cost_model.batch_time(Batch.of(decodes=[1]))
        self.level = np.zeros(n, dtype=np.int64)
        self.entered = np.zeros(n, dtype=np.int64)
        self.service = np.zeros(n)
        self._next_entry = 0

    def observe(self, sim: Simulator, events: StepEvents) -> None:
        if len(events.arrived):
            prefill = np.array([sim.cost_model.batch_time(Batch.of([(int(i), 0)]))
                                for i in sim.prompt_len[events.arrived].tolist()])
            levels = np.ceil(np.log2(np.maximum(prefill / self.quantum0, 1.0))).astype(np.int64)
            self.level[events.arrived] = np.minimum(levels, self.num_levels - 1)
            self._enter(events.arrived)
        ran = events.ran
        if len(ran):
            self.service[ran] += events.batch_time
            quantum = self.quantum0 * 2.0 ** self.level[ran]
            demoted = ran[(self.service[ran] >= quantum) & (self.level[ran] < self.num_levels - 1)]
            self.level[demoted] += 1
            self.service[demoted] = 0.0
            self._enter(demoted)

    def _enter(self, ids: np.ndarray) -> None:
        self.entered[ids] = self._next_entry + np.arange(len(ids))
        self._next_entry += len(ids)

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return self.level[ids] * _LEVEL_STRIDE + self.entered[ids]


class MLFQScheduler(BatchBuilderScheduler):
    """FastServe-style skip-join MLFQ with iteration-level preemption.

    One global order (see :class:`SkipJoinMLFQOrder`): the highest-priority requests, resident or waiting,
    run each iteration, at most ``max_batch`` of them, with whole prompts (a prompt larger than C in chunks
    of C) until the first that does not fit in C; a lower-priority resident request left out is preempted for
    that iteration and keeps its KV. A waiting request is admitted while its remaining prefill fits in free
    KV memory beside the unfinished prefills of resident ones; under memory pressure the lowest-priority
    resident request is evicted (FastServe swaps it to host memory; here it recomputes).

    Args:
        base_quantum: quantum of the top level in seconds; None uses the cost model's time of a one-token
            decode iteration.
        num_levels: number of queues.
        max_batch: most requests per iteration (vLLM's default max_num_seqs is 256).
    """

    name = "mlfq"
    requires_oracle = False

    def __init__(self, base_quantum: float | None = None, num_levels: int = 12, max_batch: int = 256) -> None:
        super().__init__(order=SkipJoinMLFQOrder(base_quantum, num_levels), eviction=LowestPriorityEviction(),
                         reservation=PromptReservation(), decodes_first=False, chunked=False, max_batch=max_batch)
