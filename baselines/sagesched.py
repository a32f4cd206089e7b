"""Schedulers driven by the online output-length predictor: SageSched's Gittins policy and SJF on the
predicted length."""

from __future__ import annotations

import numpy as np

from infermax_env.simulator import Simulator

from .builder import BatchBuilderScheduler, Order, Reservation
from .gittins import gittins_index
from .predictor import OutputLengthPredictor, feature_rows
from .rules import LowestPriorityEviction, PromptReservation
from .tracking import StepEvents


class GittinsOrder(Order):
    """Highest Gittins index of the remaining hybrid (compute + memory) service cost first; the cost
    distribution comes from the predictor's output-length histogram given the tokens generated so far.

    A request's index is cached and recomputed only when its generated tokens cross the next step of a
    geometric grid (``steps_per_octave`` per doubling) or after the predictor
    has learned ``stale_updates`` more batches of finished requests: the index moves little in between, and
    recomputing it for every resident request every iteration dominated the run time.
    """

    dynamic = True

    def __init__(self, predictor: OutputLengthPredictor, steps_per_octave: int = 8, stale_updates: int = 50):
        self.predictor = predictor
        self.steps_per_octave = steps_per_octave
        self.stale_updates = stale_updates

    def reset(self, sim: Simulator) -> None:
        self._index = np.zeros(sim.num_requests)
        self._step = np.full(sim.num_requests, -1, dtype=np.int64)
        self._version = np.full(sim.num_requests, -1, dtype=np.int64)

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros(0)
        self.predictor.observe_finished(sim)
        version = self.predictor.version
        step = np.floor(np.log2(sim.generated[ids] + 1.0) * self.steps_per_octave).astype(np.int64)
        stale = (step != self._step[ids]) | (version - self._version[ids] >= self.stale_updates)
        update = ids[stale]
        if len(update):
            distribution = self.predictor.distribution(sim, update)
            self._index[update] = gittins_index(distribution, sim.prompt_len[update], sim.generated[update],
                                                sim.config.token_budget, sim.config.kv_capacity)
            self._step[update] = step[stale]
            self._version[update] = version
        return -self._index[ids]


class PredictedLengthOrder(Order):
    """Shortest predicted remaining output first: the predictor's median of O given O > generated, minus the
    tokens generated so far."""

    dynamic = True

    def __init__(self, predictor: OutputLengthPredictor):
        self.predictor = predictor

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros(0)
        return self.predictor.predict(sim, ids) - sim.generated[ids]


class PredictedReservation(Reservation):
    """Reserve I + (the ``quantile`` of the predicted output length of the request's class) - 1 KV tokens;
    once a request outgrows it, it grows on demand."""

    def __init__(self, predictor: OutputLengthPredictor, quantile: float = 0.5):
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"reservation quantile must be in (0, 1), got {quantile!r}")
        self.predictor = predictor
        self.quantile = quantile

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros(0, dtype=np.int64)
        output = self.predictor.class_quantile(sim.prompt_len[ids], feature_rows(sim, ids), self.quantile)
        return sim.prompt_len[ids] + np.ceil(output).astype(np.int64) - 1


class PredictiveScheduler(BatchBuilderScheduler):
    """A builder scheduler owning an :class:`OutputLengthPredictor` that learns from every finished request
    (reset at the start of each run unless ``warm_start``)."""

    def __init__(self, predictor: OutputLengthPredictor, warm_start: bool, **builder) -> None:
        super().__init__(**builder)
        self.predictor = predictor
        self.warm_start = warm_start

    def reset(self, sim: Simulator) -> None:
        if not self.warm_start:
            self.predictor.reset()
        super().reset(sim)

    def observe(self, sim: Simulator, events: StepEvents) -> None:
        self.predictor.observe_finished(sim)


class SageSchedScheduler(PredictiveScheduler):
    """SageSched-style uncertainty- and hybridity-aware scheduling.

    The predictor gives each request a distribution of its output length (per prompt-length class, learned
    online from finished requests, conditioned on the tokens already generated); the hybrid service cost
    (I + O)/C + (I*O + O(O+1)/2)/M turns it into a cost distribution, and requests are ranked by the Gittins
    index of their remaining cost, highest first, in one global order over resident and waiting requests
    (re-ranked every iteration for resident requests, every ``refresh_interval`` iterations for waiting ones).
    The token budget is filled in that order (decodes 1 token, prefills chunked to what is left). A waiting
    request is admitted while I + (its class's predicted ``reserve_quantile`` of O) - 1 KV tokens fit beside the
    outstanding reservations of resident requests; under memory pressure the resident request with the
    lowest index is evicted first.

    Args:
        predictor: the output-length predictor (a fresh :class:`OutputLengthPredictor` by default).
        reserve_quantile: quantile of the predicted output length reserved at admission.
        warm_start: keep what the predictor learned across runs instead of resetting it.
        refresh_interval: iterations between re-ranking the waiting queue.
    """

    name = "sagesched"
    requires_oracle = False

    def __init__(self, predictor: OutputLengthPredictor | None = None, reserve_quantile: float = 0.5,
                 warm_start: bool = False, refresh_interval: int = 200) -> None:
        predictor = predictor or OutputLengthPredictor()
        super().__init__(predictor, warm_start, order=GittinsOrder(predictor), eviction=LowestPriorityEviction(),
                         reservation=PredictedReservation(predictor, reserve_quantile),
                         decodes_first=False, chunked=True, refresh_interval=refresh_interval)


class PredictedSJFScheduler(PredictiveScheduler):
    """Shortest-job-first on the predicted output length (SSJF-style; the learned-length baseline of SageSched).

    One global order by predicted remaining output (the predictor's conditional median minus the tokens
    generated), shortest first; the budget is filled in that order (decodes 1 token, prefills chunked to what
    is left); a waiting request is admitted while its remaining prefill fits in free KV memory beside the
    unfinished prefills of resident ones; under memory pressure the resident request with the longest
    predicted remaining output is evicted first.

    Args:
        predictor: the output-length predictor (a fresh :class:`OutputLengthPredictor` by default).
        warm_start: keep what the predictor learned across runs instead of resetting it.
        refresh_interval: iterations between re-ranking the waiting queue.
    """

    name = "sjf_predicted"
    requires_oracle = False

    def __init__(self, predictor: OutputLengthPredictor | None = None, warm_start: bool = False,
                 refresh_interval: int = 200) -> None:
        predictor = predictor or OutputLengthPredictor()
        super().__init__(predictor, warm_start, order=PredictedLengthOrder(predictor),
                         eviction=LowestPriorityEviction(), reservation=PromptReservation(),
                         decodes_first=False, chunked=True, refresh_interval=refresh_interval)
