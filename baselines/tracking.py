"""Cheap per-step bookkeeping for stateful schedulers and predictors.

A scheduler sees the simulator only through ``decide(sim)``; to keep learned state (finished requests,
attained service, a sorted waiting queue) without scanning the whole workload each iteration, it asks a
:class:`StepTracker` what changed since its previous call. When exactly one iteration ran in between, the
answer comes from that iteration's entry in the simulator's :class:`~infermax_env.RunLog` (work proportional
to the batch); otherwise (first call, a different simulator, several steps) it falls back to one scan of the
request arrays and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infermax_env.simulator import Simulator

NO_IDS = np.zeros(0, dtype=np.int64)  # writable (it has no element to write): the simulator's kernels take it as is


@dataclass(slots=True, eq=False)  # array fields: identity comparison
class StepEvents:
    """What changed in the simulator since the tracker's previous call.

    Attributes:
        arrived: requests that became visible (not rejected), in arrival order.
        finished: requests that finished.
        ran: requests that computed tokens in the single iteration in between (empty when not ``exact``).
        evicted: requests evicted in that iteration (empty when not ``exact``).
        batch_time: duration of that iteration (0 when none ran or not ``exact``).
        exact: True when at most one logged iteration ran in between, so ``ran``/``evicted`` are complete;
            False after a restart or a jump, where ``finished`` comes from a scan and the per-step fields are
            empty.
    """

    arrived: np.ndarray
    finished: np.ndarray
    ran: np.ndarray
    evicted: np.ndarray
    batch_time: float
    exact: bool


class StepTracker:
    """Reports :class:`StepEvents` between successive calls of :meth:`advance` on one simulator."""

    def __init__(self) -> None:
        self._workload = None
        self._sim: Simulator | None = None
        self._iterations = -1
        self._arrived = 0
        self._seen_finished = np.zeros(0, dtype=bool)

    def reset(self) -> None:
        """Forget everything: the next :meth:`advance` reports every arrived and finished request."""
        self.__init__()

    def advance(self, sim: Simulator) -> StepEvents:
        """The events since the previous call (everything so far on the first call or a new workload)."""
        if sim.workload is not self._workload or sim.num_iterations < self._iterations or \
                sim.num_arrived < self._arrived:
            self._workload = sim.workload
            self._sim = None
            self._arrived = 0
            self._seen_finished = np.zeros(sim.num_requests, dtype=bool)
        exact = sim is self._sim and sim.num_iterations in (self._iterations, self._iterations + 1)
        ran, evicted, batch_time = NO_IDS, NO_IDS, 0.0
        if not exact:
            finished = np.flatnonzero(sim.finished & ~self._seen_finished)
        elif sim.num_iterations == self._iterations + 1:
            log = sim.log
            last = log.decisions[-1]
            ran, evicted, batch_time = last.run_ids, last.evict_ids, log.batch_time[-1]
            finished = ran[sim.finished[ran]]
        else:
            finished = NO_IDS
        if len(finished):
            self._seen_finished[finished] = True
        arrived = NO_IDS
        if sim.num_arrived > self._arrived:
            arrived = np.arange(self._arrived, sim.num_arrived, dtype=np.int64)
            arrived = arrived[~sim.rejected[arrived]]
        self._sim, self._iterations, self._arrived = sim, sim.num_iterations, sim.num_arrived
        return StepEvents(arrived, finished, ran, evicted, batch_time, exact)
