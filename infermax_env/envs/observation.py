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

import numpy as np
from numba import njit

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
LOG_TABLE_LIMIT = 1 << 20  # token counts up to this many have their scaled log tabled (4 MiB at most)
_NUM_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
(_PROMPT_LEN, _TOKENS_COMPUTED, _TOKENS_GENERATED, _REMAINING_PREFILL, _RESIDENT_KV, _WAITING_TIME, _TIMES_PREEMPTED,
 _PREDICTED_OUTPUT_LEN, _TRUE_OUTPUT_LEN, _IN_MEMORY, _DECODING, _IN_BATCH, _EVICT_PENDING) = (
    REQUEST_INDEX[name] for name in (
        "prompt_len", "tokens_computed", "tokens_generated", "remaining_prefill", "resident_kv", "waiting_time",
        "times_preempted", "predicted_output_len", "true_output_len", "in_memory", "decoding", "in_batch",
        "evict_pending"))


class Window:
    """The K requests the agent sees and acts on this iteration, with what the action modes need.

    One Window per env, refreshed in place each iteration (its arrays are internal buffers; the observation
    never aliases them). Arrays have length K; entries past ``count`` are padding (id -1, zeros). Slots
    ``0..num_resident-1`` hold resident requests.
    """

    __slots__ = ("size", "ids", "count", "num_resident", "kv", "need", "decoding", "kv_blocks", "free_blocks",
                 "generated", "num_waiting_total", "num_resident_total", "valid", "resident", "_generated")

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
        self._generated = np.zeros(size, dtype=np.int64)
        self.generated = self._generated[:0]
        self.count = self.num_resident = self.free_blocks = self.num_waiting_total = self.num_resident_total = 0

    def refresh(self, sim: Simulator) -> "Window":
        """Fill the slots from ``sim``'s current state (see the module docstring for the order)."""
        num_waiting, num_resident_total = len(sim.waiting), len(sim.resident)
        count, num_resident = _fill_slots(sim.kv, sim.generated, sim.prompt_len, sim.closed, sim.num_arrived,
                                          num_resident_total, num_waiting, self.ids, self.kv, self.need,
                                          self.decoding, self._generated, self.valid, self.resident)
        self.count = count
        self.num_resident = num_resident
        self.generated = self._generated[:count]
        self.kv_blocks = self.kv if sim.config.block_size == 1 else sim._blocks(self.kv)
        self.free_blocks = sim.config.num_blocks - sim.kv_blocks_used
        self.num_waiting_total = num_waiting
        self.num_resident_total = num_resident_total
        return self

    @property
    def num_beyond(self) -> int:
        return self.num_waiting_total + self.num_resident_total - self.count


@njit(cache=True)
def _fill_slots(kv: np.ndarray, generated: np.ndarray, prompt_len: np.ndarray, closed: np.ndarray, num_arrived: int,
                num_resident: int, num_waiting: int, ids: np.ndarray, slot_kv: np.ndarray, need: np.ndarray,
                decoding: np.ndarray, slot_generated: np.ndarray, valid: np.ndarray,
                resident: np.ndarray) -> tuple[int, int]:
    """Fill the slot arrays with the first resident requests by id, then the first waiting ones, padding the
    rest (id -1, zeros, not valid); returns (filled slots, resident slots). Resident requests are the arrived
    ones holding KV, waiting ones the arrived unfinished ones holding none; ids are in arrival order."""
    size = len(ids)
    count = 0
    found = 0
    for r in range(num_arrived):  # resident requests
        if found == num_resident or count == size:
            break
        if kv[r] > 0:
            ids[count] = r
            count += 1
            found += 1
    slots_resident = count
    found = 0
    for r in range(num_arrived):  # waiting requests
        if found == num_waiting or count == size:
            break
        if kv[r] == 0 and not closed[r]:
            ids[count] = r
            count += 1
            found += 1
    for slot in range(size):
        valid[slot] = slot < count
        resident[slot] = slot < slots_resident
        if slot < count:
            r = ids[slot]
            slot_kv[slot] = kv[r]
            slot_generated[slot] = generated[r]
            need[slot] = prompt_len[r] + generated[r] - kv[r]
            decoding[slot] = generated[r] > 0 and need[slot] == 1
        else:
            ids[slot] = -1
            slot_kv[slot] = slot_generated[slot] = need[slot] = 0
            decoding[slot] = False
    return count, slots_resident


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
        self.preemption_scale = 1.0 / math.log1p(PREEMPTION_HORIZON)
        # The scaled logs of small integers, looked up instead of computed for each slot every step.
        self._token_table = _scaled_logs(np.arange(min(engine.kv_capacity, LOG_TABLE_LIMIT) + 1), token_scale)
        self._preemption_table = _scaled_logs(np.arange(PREEMPTION_HORIZON + 1), self.preemption_scale)
        self._no_predictions = np.zeros(window)
        self._arrival_units = np.zeros(0)
        self._prompt_feature = self._output_feature = np.zeros(0, dtype=np.float32)
        self._first_arrival = 0.0

    def scaled_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """float32 ``log1p(tokens) / log1p(M)`` clipped to 1, elementwise."""
        return _scaled_logs(tokens, self.token_scale)

    def start_episode(self, sim: Simulator) -> None:
        """Per-episode constants: arrival times in time units, the first arrival time, the scaled prompt lengths
        and (with the oracle) output lengths of every request."""
        self._arrival_units = sim.arrival / self.time_unit
        self._first_arrival = float(sim.arrival[0])
        self._prompt_feature = self.scaled_tokens(sim.prompt_len)
        # Without the oracle the true output length feature stays 0.
        self._output_feature = self.scaled_tokens(sim.output_len if self.oracle else np.zeros_like(sim.output_len))

    def requests(self, sim: Simulator, win: Window, in_batch: np.ndarray | None = None,
                 evict_pending: np.ndarray | None = None) -> np.ndarray:
        """(K, F) float32 request features, zero rows for empty slots (a transposed view of an (F, K) array,
        so each feature is filled contiguously)."""
        out = np.zeros((len(REQUEST_FEATURES), self.window), dtype=np.float32)
        n = win.count
        if n:
            predicted = self._no_predictions if self.predictor is None else self._predicted(sim, win.ids[:n])
            _fill_request_features(out, n, win.ids, win.num_resident, win.kv, win.generated, win.need, win.decoding,
                                   sim.recomputed_tokens, sim.num_preemptions, self._arrival_units,
                                   sim.clock / self.time_unit, predicted, self.predictor is not None,
                                   self._prompt_feature, self._output_feature, self._token_table,
                                   self._preemption_table, self.token_scale, self.time_scale, self.preemption_scale)
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
        out = np.empty(_NUM_GLOBAL_FEATURES, dtype=np.float32)
        _global_features(
            out, blocks_used / cfg.num_blocks, budget_left / cfg.token_budget,
            max(cfg.max_batch_size - batch_count, 0) / self.batch_slots, win.num_waiting_total,
            win.num_resident_total, win.num_beyond, sim.num_requests - sim.num_arrived,
            sim.next_arrival_time - sim.clock, sim.clock - self._first_arrival, sim.num_done / sim.num_requests,
            self.time_unit, self.time_scale, self.count_scale)
        return out


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
def _global_features(out: np.ndarray, kv_used: float, budget_left: float, batch_slots_left: float, num_waiting: int,
                     num_resident: int, num_beyond: int, num_future: int, time_to_next_arrival: float, clock: float,
                     finished: float, time_unit: float, time_scale: float, count_scale: float) -> None:
    """Fill ``out`` with the (G,) global features from their unscaled values (see GLOBAL_FEATURES); the caller
    allocates it because returning an array from a kernel costs more than the work."""
    out[0] = kv_used
    out[1] = 1.0 - kv_used
    out[2] = budget_left
    out[3] = min(batch_slots_left, 1.0)
    for i, count in enumerate((num_waiting, num_resident, num_beyond, num_future)):
        out[4 + i] = _scaled_log(count, count_scale)
    # An infinite time to the next arrival (none left) scales to 1.
    for i, seconds in enumerate((time_to_next_arrival, clock)):
        out[8 + i] = _scaled_log(max(seconds, 0.0) / time_unit, time_scale)
    out[10] = finished


@njit(cache=True)
def _fill_request_features(out: np.ndarray, n: int, ids: np.ndarray, num_resident: int, kv: np.ndarray,
                           generated: np.ndarray, need: np.ndarray, decoding: np.ndarray,
                           recomputed_tokens: np.ndarray, num_preemptions: np.ndarray, arrival_units: np.ndarray,
                           clock_units: float, predicted: np.ndarray, with_predictions: bool,
                           prompt_feature: np.ndarray, output_feature: np.ndarray, token_table: np.ndarray,
                           preemption_table: np.ndarray, token_scale: float, time_scale: float,
                           preemption_scale: float) -> None:
    """The (F, K) request features of the first ``n`` slots from the window's arrays, all but the sequential
    mode's in_batch and evict_pending. The tables hold the scaled logs of 0, 1, 2, ... tokens and preemptions."""
    for slot in range(n):
        r = ids[slot]
        out[_PROMPT_LEN, slot] = prompt_feature[r]
        out[_TOKENS_COMPUTED, slot] = _tabled_log(kv[slot] + recomputed_tokens[r], token_table, token_scale)
        out[_TOKENS_GENERATED, slot] = _tabled_log(generated[slot], token_table, token_scale)
        out[_REMAINING_PREFILL, slot] = _tabled_log(need[slot] - decoding[slot], token_table, token_scale)  # decodes: 0
        out[_RESIDENT_KV, slot] = _tabled_log(kv[slot], token_table, token_scale)
        out[_WAITING_TIME, slot] = _scaled_log(clock_units - arrival_units[r], time_scale)
        out[_TIMES_PREEMPTED, slot] = _tabled_log(num_preemptions[r], preemption_table, preemption_scale)
        if with_predictions:
            out[_PREDICTED_OUTPUT_LEN, slot] = _scaled_log(predicted[slot], token_scale)
        out[_TRUE_OUTPUT_LEN, slot] = output_feature[r]
        out[_IN_MEMORY, slot] = 1.0 if slot < num_resident else 0.0
        out[_DECODING, slot] = 1.0 if decoding[slot] else 0.0
