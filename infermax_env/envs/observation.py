"""The observation: which requests fill the K slots, and the scaled features describing them and the engine.

Slot order (stable, documented): resident requests (those holding KV) in arrival order, then waiting requests
in arrival order, truncated to K; empty slots are padded with id -1. A request keeps its relative order as
long as it stays resident or waiting, and arrival order is request-id order (workloads are sorted by arrival).

Scaling (every feature lies in [0, 1]):

* token counts: ``log1p(tokens) / log1p(M)``, clipped to 1 (M = KV capacity in tokens);
* times: ``log1p(seconds / time_unit) / log1p(1e6)`` with ``time_unit`` the cost model's time for one decode
  of a 1-token context (the shortest iteration; 19.4 ms for Llama-3-70B TP 4), clipped to 1;
* counts of requests: ``log1p(count) / log1p(10_000)``, clipped to 1; preemptions: ``log1p(n) / log1p(100)``;
* flags are 0/1; fractions (KV used/free, budget left, batch slots left, finished) are plain fractions.
"""

from __future__ import annotations

import math
from itertools import filterfalse, islice

import numpy as np

from ..batch import Batch
from ..simulator import Simulator

REQUEST_FEATURES: tuple[str, ...] = (
    # log-scaled (see the module docstring); contiguous so they are scaled in one pass
    "prompt_len",            # I (tokens)
    "tokens_computed",       # all tokens computed so far, recomputation included (KV held + tokens lost)
    "tokens_generated",      # tokens emitted so far
    "remaining_prefill",     # prefill tokens left before the next emission (0 while decoding)
    "resident_kv",           # KV tokens held now
    "waiting_time",          # time since arrival
    "times_preempted",       # evictions so far
    "predicted_output_len",  # the predictor's estimate of O (0 without a predictor)
    "true_output_len",       # O itself, only with oracle=True (else 0)
    # flags
    "in_memory",             # 1 if resident (holds KV)
    "decoding",              # 1 if its next chunk is a 1-token decode
    "in_batch",              # sequential mode: already added to the batch being built (else 0)
    "evict_pending",         # sequential mode: marked for eviction in the batch being built (else 0)
)
GLOBAL_FEATURES: tuple[str, ...] = (
    "kv_used",               # fraction of the M KV tokens in use (after the pending batch, sequential mode)
    "kv_free",               # 1 - kv_used
    "token_budget_left",     # fraction of C still free in the batch being built (1 outside sequential mode)
    "batch_slots_left",      # requests that may still join the batch, over min(max batch size, K)
    "num_waiting",           # waiting requests (arrived, no KV)
    "num_resident",          # resident requests
    "num_beyond_window",     # unfinished arrived requests that did not fit in the K slots
    "num_future_arrivals",   # requests that have not arrived yet
    "time_to_next_arrival",  # until the next arrival (1 when none is left)
    "clock",                 # time since the first arrival
    "finished_fraction",     # finished (or rejected) requests over all requests of the episode
)
REQUEST_INDEX = {name: i for i, name in enumerate(REQUEST_FEATURES)}
GLOBAL_INDEX = {name: i for i, name in enumerate(GLOBAL_FEATURES)}

TIME_HORIZON_UNITS = 1e6
COUNT_HORIZON = 10_000
PREEMPTION_HORIZON = 100
_NUM_LOG_FEATURES = REQUEST_INDEX["true_output_len"] + 1
_IN_MEMORY, _DECODING, _IN_BATCH, _EVICT_PENDING = (REQUEST_INDEX[name] for name in (
    "in_memory", "decoding", "in_batch", "evict_pending"))
_PROMPT_LEN, _TRUE_OUTPUT_LEN = REQUEST_INDEX["prompt_len"], REQUEST_INDEX["true_output_len"]
_FIRST_DYNAMIC, _LAST_DYNAMIC = REQUEST_INDEX["tokens_computed"], REQUEST_INDEX["times_preempted"]
assert REQUEST_INDEX["predicted_output_len"] == _LAST_DYNAMIC + 1


class Window:
    """The K requests the agent sees and acts on this iteration, with what the action modes need.

    One Window per env, refreshed in place each iteration (its arrays are internal buffers; the observation
    never aliases them). Arrays have length K; entries past ``count`` are padding (id -1, zeros). Slots
    ``0..num_resident-1`` hold resident requests.
    """

    __slots__ = ("size", "ids", "count", "num_resident", "kv", "need", "decoding", "kv_blocks", "free_blocks",
                 "generated", "num_waiting_total", "num_resident_total", "valid", "resident", "_slots")

    def __init__(self, size: int):
        self.size = size
        self.ids = np.full(size, -1, dtype=np.int64)
        self.kv = np.zeros(size, dtype=np.int64)
        self.need = np.zeros(size, dtype=np.int64)
        self.decoding = np.zeros(size, dtype=bool)
        self.valid = np.zeros(size, dtype=bool)
        """(K,) bool: the slot holds a request."""
        self.resident = np.zeros(size, dtype=bool)
        """(K,) bool: the slot holds a resident request."""
        self.kv_blocks = self.kv
        self.generated = self.kv[:0]
        self.count = self.num_resident = self.free_blocks = self.num_waiting_total = self.num_resident_total = 0
        self._slots = np.arange(size)

    def refresh(self, sim: Simulator) -> "Window":
        """Fill the slots from ``sim``'s current state (see the module docstring for the order)."""
        size = self.size
        slot_ids = sorted(sim.resident)[:size]
        num_resident = len(slot_ids)
        if num_resident < size and sim.waiting:
            slot_ids += _waiting_head(sim, size - num_resident)
        count = len(slot_ids)
        ids, kv, need, decoding = self.ids, self.kv, self.need, self.decoding
        if count < self.count:
            ids[count:self.count] = -1
            kv[count:self.count] = 0
            need[count:self.count] = 0
            decoding[count:self.count] = False
        ids[:count] = slot_ids
        live = ids[:count]
        kv_live = kv[:count]
        kv_live[:] = sim.kv[live]
        generated = sim.generated[live]
        need_live = need[:count]
        np.subtract(sim.prompt_len[live] + generated, kv_live, out=need_live)
        np.logical_and(generated > 0, need_live == 1, out=decoding[:count])
        if count != self.count:
            np.less(self._slots, count, out=self.valid)
        if num_resident != self.num_resident:
            np.less(self._slots, num_resident, out=self.resident)
        self.count = count
        self.num_resident = num_resident
        self.generated = generated
        self.kv_blocks = kv if sim.config.block_size == 1 else sim._blocks(kv)
        self.free_blocks = sim.config.num_blocks - sim.kv_blocks_used
        self.num_waiting_total = len(sim.waiting)
        self.num_resident_total = len(sim.resident)
        return self

    @property
    def num_beyond(self) -> int:
        return self.num_waiting_total + self.num_resident_total - self.count


def _waiting_head(sim: Simulator, count: int) -> list[int]:
    """The first ``count`` waiting requests in arrival order. ``sim.waiting`` lists fresh arrivals in arrival
    order with evicted requests re-appended; merging its first fresh ones with the evicted ones suffices."""
    evicted = sim.evicted_waiting
    if not evicted:
        return list(islice(sim.waiting, count))
    fresh = list(islice(filterfalse(evicted.__contains__, sim.waiting), count))
    fresh += evicted
    fresh.sort()  # fresh is already sorted and the evicted are few: cheap for timsort
    return fresh[:count]


class ObservationBuilder:
    """Builds the Dict observation of one env; scales are fixed at construction from the engine and cost model."""

    def __init__(self, engine, cost_model, window: int, oracle: bool, predictor=None):
        self.window = window
        self.oracle = oracle
        self.predictor = predictor
        token_scale = 1.0 / math.log1p(engine.kv_capacity)
        self.time_unit = cost_model.batch_time(Batch.of(decodes=[1]))
        if not self.time_unit > 0:
            raise ValueError(f"the cost model prices a 1-token decode at {self.time_unit!r} s; it must be positive")
        self.time_scale = 1.0 / math.log1p(TIME_HORIZON_UNITS)
        self.count_scale = 1.0 / math.log1p(COUNT_HORIZON)
        self.batch_slots = min(engine.max_batch_size, window)
        self.token_scale = token_scale
        # The per-step log features: tokens_computed .. times_preempted, and predicted_output_len with a
        # predictor. prompt_len and true_output_len never change within an episode: scaled once per episode.
        self._dynamic = slice(_FIRST_DYNAMIC, _LAST_DYNAMIC + 1 + (predictor is not None))
        log_scales = np.full((_NUM_LOG_FEATURES, 1), token_scale)
        log_scales[REQUEST_INDEX["waiting_time"]] = self.time_scale
        log_scales[REQUEST_INDEX["times_preempted"]] = 1.0 / math.log1p(PREEMPTION_HORIZON)
        self._dynamic_scales = log_scales[self._dynamic]
        self._raw = np.zeros((self._dynamic.stop - self._dynamic.start, window))
        self._arrival_units = np.zeros(0)
        self._prompt_feature = self._output_feature = np.zeros(0, dtype=np.float32)
        self._first_arrival = 0.0

    def scaled_time(self, seconds: float) -> float:
        return min(math.log1p(max(seconds, 0.0) / self.time_unit) * self.time_scale, 1.0)

    def scaled_count(self, count: int) -> float:
        return min(math.log1p(count) * self.count_scale, 1.0)

    def scaled_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """float32 ``log1p(tokens) / log1p(M)`` clipped to 1, elementwise."""
        return np.minimum(np.log1p(tokens.astype(np.float64)) * self.token_scale, 1.0).astype(np.float32)

    def start_episode(self, sim: Simulator) -> None:
        """Per-episode constants: arrival times in time units, the first arrival time, the scaled prompt lengths
        and (with the oracle) output lengths of every request."""
        self._arrival_units = sim.arrival / self.time_unit
        self._first_arrival = float(sim.arrival[0])
        self._prompt_feature = self.scaled_tokens(sim.prompt_len)
        self._output_feature = self.scaled_tokens(sim.output_len) if self.oracle else None

    def requests(self, sim: Simulator, win: Window, in_batch: np.ndarray | None = None,
                 evict_pending: np.ndarray | None = None) -> np.ndarray:
        """(K, F) float32 request features, zero rows for empty slots (a transposed view of an (F, K) array,
        so each feature is filled contiguously)."""
        out = np.zeros((len(REQUEST_FEATURES), self.window), dtype=np.float32)
        n = win.count
        if n:
            live = win.ids[:n]
            kv = win.kv[:n]
            raw = self._raw[:, :n]  # (dynamic log features, n) float64 scratch, rows from _FIRST_DYNAMIC on
            # Integer arithmetic first, then one conversion per row: cheaper than mixed-dtype ufunc outputs.
            raw[0] = kv + sim.recomputed_tokens[live]
            raw[1] = win.generated
            raw[2] = win.need[:n] - win.decoding[:n]  # a decode needs 1: 0 prefill left
            raw[3] = kv
            np.subtract(sim.clock / self.time_unit, self._arrival_units[live], out=raw[4])
            raw[5] = sim.num_preemptions[live]
            if self.predictor is not None:
                raw[6] = self._predicted(sim, live)
            np.log1p(raw, out=raw)
            raw *= self._dynamic_scales
            np.minimum(raw, 1.0, out=raw)
            out[self._dynamic, :n] = raw
            out[_PROMPT_LEN, :n] = self._prompt_feature[live]
            if self._output_feature is not None:
                out[_TRUE_OUTPUT_LEN, :n] = self._output_feature[live]
            out[_IN_MEMORY, :win.num_resident] = 1.0
            out[_DECODING, :n] = win.decoding[:n]
        if in_batch is not None:
            out[_IN_BATCH] = in_batch
            out[_EVICT_PENDING] = evict_pending
        return out.T

    def _predicted(self, sim: Simulator, live: np.ndarray) -> np.ndarray:
        predicted = np.asarray(self.predictor.predict(sim, live), dtype=np.float64).reshape(-1)
        if predicted.shape != live.shape:
            raise ValueError(f"predictor.predict returned {predicted.shape[0]} values for {len(live)} requests")
        return np.maximum(predicted, 0.0)

    def globals(self, sim: Simulator, win: Window, blocks_used: int, budget_left: int, batch_count: int) -> np.ndarray:
        """(G,) float32 engine features; ``blocks_used``, ``budget_left`` and ``batch_count`` describe the batch
        being built (the committed state outside the sequential mode)."""
        cfg = sim.config
        kv_used = blocks_used / cfg.num_blocks
        next_arrival = sim.next_arrival_time
        return np.array([
            kv_used, 1.0 - kv_used, budget_left / cfg.token_budget,
            min(max(cfg.max_batch_size - batch_count, 0) / self.batch_slots, 1.0),
            self.scaled_count(win.num_waiting_total), self.scaled_count(win.num_resident_total),
            self.scaled_count(win.num_beyond), self.scaled_count(sim.num_requests - sim.num_arrived),
            1.0 if next_arrival == math.inf else self.scaled_time(next_arrival - sim.clock),
            self.scaled_time(sim.clock - self._first_arrival), sim.num_done / sim.num_requests,
        ], dtype=np.float32)
