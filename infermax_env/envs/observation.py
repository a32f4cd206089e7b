"""The observation: the scaled features describing the requests in the K slots (:mod:`.window`) and the engine.

Scaling (every feature lies in [0, 1]):

* token counts: ``log1p(tokens) / log1p(M)``, clipped to 1 (M = KV capacity in tokens);
* times: ``log1p(seconds / time_unit) / log1p(1e6)`` with ``time_unit`` the cost model's time for one decode
  of a 1-token context (the shortest iteration; 19.4 ms for Llama-3-70B TP 4), clipped to 1;
* counts of requests: ``log1p(count) / log1p(10_000)``, clipped to 1; preemptions: ``log1p(n) / log1p(100)``;
* flags are 0/1; fractions (KV used/free, budget left, batch slots left, finished) are plain fractions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import layout
from ..batch import Batch
from ..simulator import Simulator
from .window import SLOT_DECODING, SLOT_GENERATED, SLOT_ID, SLOT_KV, SLOT_NEED, Window

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
LOG_TABLE_LIMIT = 1 << 20  # token counts up to this many have their scaled log tabled (4 MiB at most)
_NUM_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
(_PROMPT_LEN, _TOKENS_COMPUTED, _TOKENS_GENERATED, _REMAINING_PREFILL, _RESIDENT_KV, _WAITING_TIME, _TIMES_PREEMPTED,
 _PREDICTED_OUTPUT_LEN, _TRUE_OUTPUT_LEN, _IN_MEMORY, _DECODING, _IN_BATCH, _EVICT_PENDING) = (
    REQUEST_INDEX[name] for name in (
        "prompt_len", "tokens_computed", "tokens_generated", "remaining_prefill", "resident_kv", "waiting_time",
        "times_preempted", "predicted_output_len", "true_output_len", "in_memory", "decoding", "in_batch",
        "evict_pending"))


class ObservationBuilder:
    """Builds the Dict observation of one env; scales are fixed at construction from the engine and cost model."""

    def __init__(self, engine, cost_model, window: int, oracle: bool, predictor=None):
        self.window = window
        self.oracle = oracle
        self.predictor = predictor
        self._num_blocks, self._token_budget, self._max_batch_size = (
            engine.num_blocks, engine.token_budget, engine.max_batch_size)
        token_scale = 1.0 / math.log1p(engine.kv_capacity)
        self.time_unit = cost_model.batch_time(Batch.of(decodes=[1]))
        if not self.time_unit > 0:
            raise ValueError(f"the cost model prices a 1-token decode at {self.time_unit!r} s; it must be positive")
        self.time_scale = 1.0 / math.log1p(TIME_HORIZON_UNITS)
        self.count_scale = 1.0 / math.log1p(COUNT_HORIZON)
        self.batch_slots = min(engine.max_batch_size, window)
        self.token_scale = token_scale
        self.preemption_scale = 1.0 / math.log1p(PREEMPTION_HORIZON)
        # The scaled logs of small integers, looked up instead of computed for each slot every step.
        self._token_table = _scaled_logs(np.arange(min(engine.kv_capacity, LOG_TABLE_LIMIT) + 1), token_scale)
        self._preemption_table = _scaled_logs(np.arange(PREEMPTION_HORIZON + 1), self.preemption_scale)
        self._no_predictions = np.zeros(window)
        self._not_in_batch = np.zeros((2, window), dtype=bool)
        self._episode = np.zeros((3, 0))
        self._first_arrival = 0.0

    def scaled_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """float32 ``log1p(tokens) / log1p(M)`` clipped to 1, elementwise."""
        return _scaled_logs(tokens, self.token_scale)

    def start_episode(self, sim: Simulator) -> None:
        """Per-episode constants: arrival times in time units, the first arrival time, the scaled prompt lengths
        and (with the oracle) output lengths of every request."""
        self._first_arrival = float(sim.arrival[0])
        # Without the oracle the true output length feature stays 0.
        self._episode = np.stack([sim.arrival / self.time_unit, self.scaled_tokens(sim.prompt_len),
                                  self.scaled_tokens(sim.output_len) if self.oracle else np.zeros(sim.num_requests)])

    def observe(self, sim: Simulator, win: Window, pending=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(requests, slot_mask, global): the (K, F) float32 request features (zero rows for empty slots; a
        transposed view of an (F, K) array, so each feature is filled contiguously), the (K,) int8 slot-valid
        mask and the (G,) float32 engine features. ``pending`` is the sequential mode's batch being built, whose
        slots and resources the features then describe; else the committed state is described."""
        requests = np.zeros((len(REQUEST_FEATURES), self.window), dtype=np.float32)
        slot_mask = np.empty(self.window, dtype=np.int8)
        global_features = np.empty(_NUM_GLOBAL_FEATURES, dtype=np.float32)
        n = win.count
        predicted = self._no_predictions if self.predictor is None or not n else self._predicted(sim, win.ids[:n])
        if pending is None:
            blocks_used, budget_left, batch_count, in_batch = sim.kv_blocks_used, self._token_budget, 0, None
        else:
            blocks_used, budget_left = self._num_blocks - pending.free_blocks, pending.budget_left
            batch_count, in_batch = pending.count, np.stack([pending.in_batch, pending.evict])
        _fill_features(
            requests, slot_mask, global_features, n, win.num_resident, win.slots, win.slot_flags,
            self._not_in_batch if in_batch is None else in_batch, sim.counts, self._episode,
            predicted, self.predictor is not None, self._token_table, self._preemption_table, sim.clock,
            self.time_unit, self.token_scale, self.time_scale, self.preemption_scale, self.count_scale,
            blocks_used / self._num_blocks, budget_left / self._token_budget,
            max(self._max_batch_size - batch_count, 0) / self.batch_slots, win.num_waiting_total,
            win.num_resident_total, win.num_beyond, sim.num_requests - sim.num_arrived,
            sim.next_arrival_time - sim.clock, sim.clock - self._first_arrival, sim.num_done / sim.num_requests)
        return requests.T, slot_mask, global_features

    def _predicted(self, sim: Simulator, live: np.ndarray) -> np.ndarray:
        predicted = np.asarray(self.predictor.predict(sim, live), dtype=np.float64).reshape(-1)
        if predicted.shape != live.shape:
            raise ValueError(f"predictor.predict returned {predicted.shape[0]} values for {len(live)} requests")
        return np.maximum(predicted, 0.0)


@njit(cache=True)
def _scaled_log(value: float, scale: float) -> float:
    """``log1p(value) * scale`` clipped to 1 (NaN stays NaN, as with np.minimum): every log-scaled feature."""
    scaled = math.log1p(value) * scale
    return 1.0 if scaled > 1.0 else scaled


@njit(cache=True)
def _tabled_log(value: int, table: np.ndarray, scale: float) -> float:
    """:func:`_scaled_log` of a non-negative integer, read from ``table`` (the values for 0..len-1) when it is
    covered."""
    return table[value] if value < len(table) else _scaled_log(value, scale)


@njit(cache=True)
def _scaled_logs(values: np.ndarray, scale: float) -> np.ndarray:
    """float32 :func:`_scaled_log` of each value."""
    out = np.empty(len(values), dtype=np.float32)
    for i in range(len(values)):
        out[i] = _scaled_log(values[i], scale)
    return out


@njit(cache=True)
def _fill_features(requests: np.ndarray, slot_mask: np.ndarray, global_features: np.ndarray, n: int,
                   num_resident: int, slots: np.ndarray, slot_flags: np.ndarray, in_batch: np.ndarray,
                   counts: np.ndarray, episode: np.ndarray,
                   predicted: np.ndarray, with_predictions: bool, token_table: np.ndarray,
                   preemption_table: np.ndarray, clock: float, time_unit: float, token_scale: float,
                   time_scale: float, preemption_scale: float, count_scale: float, kv_used: float, budget_left: float,
                   batch_slots_left: float, num_waiting: int, num_resident_total: int, num_beyond: int,
                   num_future: int, time_to_next_arrival: float, clock_since_start: float, finished: float) -> None:
    """Fill the (F, K) request features of the first ``n`` slots, the slot mask and the (G,) global features.

    ``slots``/``slot_flags`` are the window's, ``counts`` the simulator's, ``episode`` the
    builder's per-episode rows (arrival in time units, scaled prompt and output lengths) and ``in_batch`` the
    sequential mode's (in batch, marked for eviction) rows. The tables hold the scaled logs of 0, 1, 2, ...
    tokens and preemptions."""
    recomputed_tokens, num_preemptions = counts[layout.RECOMPUTED_TOKENS], counts[layout.NUM_PREEMPTIONS]
    clock_units = clock / time_unit
    for slot in range(len(slot_mask)):
        slot_mask[slot] = slot < n
    for slot in range(n):
        r = slots[SLOT_ID, slot]
        kv, need, decoding = slots[SLOT_KV, slot], slots[SLOT_NEED, slot], slot_flags[SLOT_DECODING, slot]
        requests[_PROMPT_LEN, slot] = episode[1, r]
        requests[_TOKENS_COMPUTED, slot] = _tabled_log(kv + recomputed_tokens[r], token_table, token_scale)
        requests[_TOKENS_GENERATED, slot] = _tabled_log(slots[SLOT_GENERATED, slot], token_table, token_scale)
        requests[_REMAINING_PREFILL, slot] = _tabled_log(need - decoding, token_table, token_scale)  # decodes: 0
        requests[_RESIDENT_KV, slot] = _tabled_log(kv, token_table, token_scale)
        requests[_WAITING_TIME, slot] = _scaled_log(clock_units - episode[0, r], time_scale)
        requests[_TIMES_PREEMPTED, slot] = _tabled_log(num_preemptions[r], preemption_table, preemption_scale)
        if with_predictions:
            requests[_PREDICTED_OUTPUT_LEN, slot] = _scaled_log(predicted[slot], token_scale)
        requests[_TRUE_OUTPUT_LEN, slot] = episode[2, r]
        requests[_IN_MEMORY, slot] = 1.0 if slot < num_resident else 0.0
        requests[_DECODING, slot] = 1.0 if decoding else 0.0
        requests[_IN_BATCH, slot] = 1.0 if in_batch[0, slot] else 0.0
        requests[_EVICT_PENDING, slot] = 1.0 if in_batch[1, slot] else 0.0
    out = global_features
    out[0] = kv_used
    out[1] = 1.0 - kv_used
    out[2] = budget_left
    out[3] = min(batch_slots_left, 1.0)
    for i, count in enumerate((num_waiting, num_resident_total, num_beyond, num_future)):
        out[4 + i] = _scaled_log(count, count_scale)
    # An infinite time to the next arrival (none left) scales to 1.
    for i, seconds in enumerate((time_to_next_arrival, clock_since_start)):
        out[8 + i] = _scaled_log(max(seconds, 0.0) / time_unit, time_scale)
    out[10] = finished
