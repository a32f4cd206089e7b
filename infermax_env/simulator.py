"""The iteration-level inference simulator: one set of semantics for every scheduler, env and solver.

Semantics (the full statement; docs/env.md describes the env built on it):

* Request r has prompt length I and output length O. ``kv[r]`` counts the tokens computed since its last
  eviction, which is also the KV it holds; ``generated[r]`` counts emitted tokens.
* The tokens r must still compute before it emits its next token are ``need = I + generated - kv``. A chunk
  of 1..need tokens may run in an iteration; a chunk equal to ``need`` emits one token at the end of the
  iteration. A request is *decoding* when it has emitted a token and ``need == 1``; otherwise its chunk is a
  prefill (of the prompt, or of prompt + generated tokens after an eviction).
* Eviction (preemption by recompute) drops all KV of a resident request: ``kv = 0``; it goes back to waiting.
* Each iteration, after evictions, the KV of all resident requests including this iteration's new tokens must
  fit in M (each request rounded up to whole blocks); the chunk tokens total at most C; at most
  ``max_batch_size`` requests compute. A request releases its KV at the end of the iteration that emits its
  O-th token, at which point ``kv == I + O - 1``.
* The clock advances by the cost model's time for the batch. Requests whose arrival time is <= the clock are
  visible. When no arrived request is unfinished, the clock jumps to the next arrival. An empty decision
  while work is waiting idles the GPU until the next arrival (an error if none is left).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
from numba import njit

from . import layout
from .batch import Batch
from .cost.base import BREAKDOWN_KEYS, CostModel
from .deployment import EngineConfig
from .errors import InfeasibleDecisionError, WorkloadError
from .layout import COUNT_ROWS, FLAG_ROWS, TIME_ROWS, ceil_blocks
from .metrics import RunMetrics, compute_metrics
from .workload import Workload

_NO_IDS = np.zeros(0, dtype=np.int64)  # left writable (it has no element to write): kernels take it like any array
_ROWS = (("counts", COUNT_ROWS), ("times", TIME_ROWS), ("flags", FLAG_ROWS))
_ROW_VIEWS = tuple("_" + name for _, rows in _ROWS for name in rows)  # where each Simulator keeps its row views


class Decision:
    """What one iteration does: compute ``run_tokens[i]`` tokens for request ``run_ids[i]`` after evicting
    ``evict_ids``. Ids are request positions in the workload (0..n-1)."""

    __slots__ = ("run_ids", "run_tokens", "evict_ids")

    def __init__(self, run_ids: Iterable[int] | np.ndarray = _NO_IDS, run_tokens: Iterable[int] | np.ndarray = _NO_IDS,
                 evict_ids: Iterable[int] | np.ndarray = _NO_IDS):
        self.run_ids = _int_array(run_ids, "run_ids")
        self.run_tokens = _int_array(run_tokens, "run_tokens")
        self.evict_ids = _int_array(evict_ids, "evict_ids")
        if len(self.run_ids) != len(self.run_tokens):
            raise InfeasibleDecisionError(
                f"Decision has {len(self.run_ids)} run_ids but {len(self.run_tokens)} run_tokens")

    @classmethod
    def from_dict(cls, tokens: dict[int, int], evict: Iterable[int] = ()) -> "Decision":
        """``Decision.from_dict({request: tokens, ...}, evict=[...])``."""
        return cls(list(tokens.keys()), list(tokens.values()), list(evict))

    @property
    def is_empty(self) -> bool:
        return len(self.run_ids) == 0 and len(self.evict_ids) == 0

    def as_dict(self) -> dict[str, list[int]]:
        return {"run_ids": self.run_ids.tolist(), "run_tokens": self.run_tokens.tolist(),
                "evict_ids": self.evict_ids.tolist()}

    def __repr__(self) -> str:
        runs = dict(zip(self.run_ids.tolist(), self.run_tokens.tolist()))
        return f"Decision(run={runs}, evict={self.evict_ids.tolist()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and all(
            np.array_equal(getattr(self, name), getattr(other, name)) for name in self.__slots__)


def _int_array(values, name: str) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == np.int64 and values.ndim == 1:
        return values
    array = np.asarray(values)
    if array.size == 0:
        return _NO_IDS
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InfeasibleDecisionError(f"Decision.{name} must be a 1-D integer array, got {array.dtype} shape {array.shape}")
    return array.astype(np.int64)


@dataclass(slots=True, eq=False)  # array fields: identity comparison
class StepResult:
    """What one :meth:`Simulator.step` did.

    ``decision`` is the decision applied and ``batch`` what it computed. ``latency_area`` is the integral over
    the elapsed time of the number of requests in the system (arrived, unfinished); summed over a run it equals
    the sum of TTLT. ``elapsed = batch_time + idle_time``. ``emitted`` and ``finished`` are the ids that emitted
    a token / finished in this step. ``breakdown`` is the cost model's seconds per component of the batch when
    the simulator was built with ``breakdown=True`` (the batch is priced once either way), else None.
    """

    decision: Decision
    batch: Batch
    batch_time: float
    idle_time: float
    latency_area: float
    emitted: np.ndarray
    finished: np.ndarray
    breakdown: dict[str, float] | None = None

    @property
    def elapsed(self) -> float:
        return self.batch_time + self.idle_time


class Scheduler(Protocol):
    """A policy that drives the simulator directly.

    A scheduler may also define ``on_step(result: StepResult)``: :meth:`Simulator.run` then calls it after
    every step with what the step did.
    """

    def reset(self, sim: "Simulator") -> None:
        """Called once before the first decision of a run."""

    def decide(self, sim: "Simulator") -> Decision:
        """The decision for the next iteration, from the simulator's current state."""


class RunLog:
    """What each launched iteration did, one entry per iteration in every list: ``start`` time, ``batch_time``,
    ``kv_blocks`` (peak KV blocks in use), ``tokens`` computed, the ``decisions`` and ``decode`` (which runs of
    the decision were decodes). Idle steps are not logged."""

    __slots__ = ("start", "batch_time", "kv_blocks", "tokens", "decisions", "decode")

    def __init__(self) -> None:
        self.start: list[float] = []
        self.batch_time: list[float] = []
        self.kv_blocks: list[int] = []
        self.tokens: list[int] = []
        self.decisions: list[Decision] = []
        self.decode: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.start)

    def copy(self) -> "RunLog":
        """A log whose lists are copies (entries are shared: they are not modified once logged)."""
        other = RunLog()
        for name in self.__slots__:
            setattr(other, name, list(getattr(self, name)))
        return other


def _state_attribute(name: str, what: str) -> property:
    """A :class:`Simulator` attribute that cannot be rebound (the step and the row views would lose track of
    it); ``what`` says what it is."""
    def refuse(sim: "Simulator", value: Any) -> None:
        raise AttributeError(f"Simulator.{name} is {what}, which the step reads; write it in place "
                             f"(sim.{name}[...] = ...) instead of rebinding it")
    return property(attrgetter("_" + name), refuse, doc=f"{what[0].upper()}{what[1:]} (write in place).")


def _row(name: str, packed: str) -> property:
    return _state_attribute(name, f"a row of Simulator.{packed}")


class Simulator:
    """Simulates serving ``workload`` under ``config`` with batch times from ``cost_model``.

    Per-request state is exposed as arrays indexed by request position: ``kv``, ``generated``,
    ``prompt_len``, ``output_len``, ``arrival``, ``first_token_time``, ``finish_time``, ``num_preemptions``,
    ``recomputed_tokens`` and the rest of :data:`~infermax_env.layout.COUNT_ROWS`,
    :data:`~infermax_env.layout.TIME_ROWS` and :data:`~infermax_env.layout.FLAG_ROWS`: they are views of the rows
    of the packed arrays ``counts`` (int64), ``times`` (float64, seconds) and ``flags`` (bool). Write them in place
    (``sim.kv[r] = ...``); rebinding a row or a packed array raises AttributeError. ``copy.deepcopy``, ``pickle``
    and :meth:`clone` give independent simulators whose rows view their own packed arrays.
    ``waiting`` and ``resident`` are sets of request ids (arrived unfinished requests without and with KV;
    evicted requests return to ``waiting``, see ``evicted_waiting``); they carry no order: request ids are in
    arrival order, so :meth:`waiting_by_arrival` sorts them. ``log`` is the :class:`RunLog` of the iterations.

    Args:
        oracle: whether schedulers may read ``output_len`` of unfinished requests. Oracle schedulers (sort by
            output length, exact no-eviction reservation, SRPT) refuse to run when it is False. The simulator
            itself always uses the true lengths to know when a request finishes.
        oversized: what to do with a request whose full KV (I + O - 1 tokens, in blocks) exceeds M:
            ``"error"`` (default) raises :class:`WorkloadError`; ``"reject"`` records it as rejected.
        breakdown: whether each :class:`StepResult` carries the cost model's breakdown of its batch.
    """

    counts = _state_attribute("counts", "the packed int64 per-request state (rows: layout.COUNT_ROWS)")
    times = _state_attribute("times", "the packed float64 per-request times (rows: layout.TIME_ROWS)")
    flags = _state_attribute("flags", "the packed bool per-request flags (rows: layout.FLAG_ROWS)")
    kv = _row("kv", "counts")
    generated = _row("generated", "counts")
    prompt_len = _row("prompt_len", "counts")
    output_len = _row("output_len", "counts")
    recomputed_tokens = _row("recomputed_tokens", "counts")
    num_preemptions = _row("num_preemptions", "counts")
    kv_at_finish = _row("kv_at_finish", "counts")
    arrival = _row("arrival", "times")
    first_scheduled_time = _row("first_scheduled_time", "times")
    first_token_time = _row("first_token_time", "times")
    finish_time = _row("finish_time", "times")
    finished = _row("finished", "flags")
    rejected = _row("rejected", "flags")
    closed = _row("closed", "flags")

    def __init__(self, workload: Workload, cost_model: CostModel, config: EngineConfig = EngineConfig(), *,
                 oracle: bool = True, oversized: str = "error", breakdown: bool = False):
        if oversized not in ("error", "reject"):
            raise ValueError(f"oversized must be 'error' or 'reject', got {oversized!r}")
        self.cost_model = cost_model
        self.config = config
        self.oversized = oversized
        self.oracle = oracle
        self.with_breakdown = breakdown
        self.reset(workload)

    # ---- lifecycle -----------------------------------------------------------------------------
    def reset(self, workload: Workload | None = None) -> None:
        """Start over, on ``workload`` if given (else the current one)."""
        if workload is not None:
            self.workload = workload
        w = self.workload
        n = len(w)
        self.num_requests = n
        self._counts = np.zeros((len(COUNT_ROWS), n), dtype=np.int64)
        self._counts[layout.PROMPT_LEN] = w.prompt_len
        self._counts[layout.OUTPUT_LEN] = w.output_len
        self._times = np.full((len(TIME_ROWS), n), np.nan)
        self._times[layout.ARRIVAL] = w.arrival
        self._flags = np.zeros((len(FLAG_ROWS), n), dtype=bool)
        self._bind_rows()
        full_blocks = self.config.blocks(w.prompt_len + w.output_len - 1)
        oversized = np.flatnonzero(full_blocks > self.config.num_blocks)
        if oversized.size:
            i = int(oversized[0])
            if self.oversized == "error":
                raise WorkloadError(
                    f"request {i} (id {int(w.request_id[i])}) needs I + O - 1 = {int(w.prompt_len[i])} + "
                    f"{int(w.output_len[i])} - 1 = "
                    f"{self.config.kv_shortfall(int(w.prompt_len[i] + w.output_len[i] - 1))} "
                    f"({len(oversized)} such requests); raise M or "
                    f"pass oversized='reject'")
            self._rejected[oversized] = True
            self._closed[oversized] = True
        self.waiting: set[int] = set()
        self.resident: set[int] = set()
        self.clock = 0.0
        self.kv_blocks_used = 0
        self.num_iterations = 0
        self.total_batch_time = 0.0
        self.total_idle_time = 0.0
        self.total_latency_area = 0.0
        self.num_done = int(self._rejected.sum())
        self._next_arrival = 0
        self.log = RunLog()
        if n:
            self.clock = float(self._arrival[0])
        self._admit_arrivals(self.clock)
        self._skip_idle()

    def _bind_rows(self) -> None:
        """Point the row views at the packed arrays (``kv`` is ``counts[layout.KV]``, and so on)."""
        for packed, rows in _ROWS:
            array = getattr(self, "_" + packed)
            for i, name in enumerate(rows):
                setattr(self, "_" + name, array[i])

    def __getstate__(self) -> dict[str, Any]:
        """The state without the row views (a copy would make them arrays of their own)."""
        state = self.__dict__.copy()
        for view in _ROW_VIEWS:
            del state[view]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_rows()

    def clone(self) -> "Simulator":
        """An independent copy of the current state (for look-ahead and exhaustive search); unlike
        ``copy.deepcopy`` it shares the workload, the cost model and the logged entries, which are not modified."""
        state = self.__getstate__()
        state.update({"_" + name: getattr(self, name).copy() for name, _ in _ROWS})
        state.update(waiting=set(self.waiting), resident=set(self.resident), log=self.log.copy())
        other = object.__new__(Simulator)
        other.__setstate__(state)
        return other

    # ---- queries -------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every request finished or was rejected."""
        return self.num_done == self.num_requests

    @property
    def num_arrived(self) -> int:
        return self._next_arrival

    @property
    def next_arrival_time(self) -> float:
        """Arrival time of the next request not yet visible (inf if none)."""
        i = self._next_arrival
        rejected = self._rejected
        while i < self.num_requests and rejected[i]:
            i += 1
        return float(self._arrival[i]) if i < self.num_requests else float("inf")

    @property
    def kv_tokens_free(self) -> int:
        return (self.config.num_blocks - self.kv_blocks_used) * self.config.block_size

    def need(self, ids: np.ndarray | int) -> np.ndarray | int:
        """Tokens a request must compute before it emits its next token (1 for a decode)."""
        return self.prompt_len[ids] + self.generated[ids] - self.kv[ids]

    def is_decoding(self, ids: np.ndarray | int) -> np.ndarray | bool:
        """True where the request has emitted a token and holds all KV but the newest token's."""
        return (self.generated[ids] > 0) & (self.kv[ids] == self.prompt_len[ids] + self.generated[ids] - 1)

    @property
    def evicted_waiting(self) -> list[int]:
        """Waiting request ids that were evicted (they hold no KV but were preempted), in arrival order."""
        preempted = self.num_preemptions
        return [r for r in sorted(self.waiting) if preempted[r]]

    def waiting_by_arrival(self) -> Iterator[int]:
        """Waiting request ids in arrival order."""
        return iter(sorted(self.waiting))

    def waiting_ids(self) -> np.ndarray:
        """Waiting request ids, in no particular order."""
        return np.fromiter(self.waiting, dtype=np.int64, count=len(self.waiting))

    def resident_ids(self) -> np.ndarray:
        """Resident request ids, in no particular order."""
        return np.fromiter(self.resident, dtype=np.int64, count=len(self.resident))

    # ---- the step ------------------------------------------------------------------------------
    def step(self, decision: Decision) -> StepResult:
        """Check ``decision`` against every constraint, apply it, and advance the clock.

        Raises :class:`InfeasibleDecisionError` naming the violated constraint (nothing is changed then).
        """
        ids, tokens, evict = decision.run_ids, decision.run_tokens, decision.evict_ids
        if self.done:
            raise InfeasibleDecisionError("the simulation is done: every request has finished or was rejected")
        cfg = self.config
        decode = np.empty(len(ids), dtype=np.bool_)
        parts = np.empty((3, len(ids)), dtype=np.int64)
        error, value, total_tokens, blocks_after, num_decodes, prefill_samples = _check_and_split(
            ids, tokens, evict, self._counts, self._closed, self._next_arrival, cfg.max_batch_size, cfg.token_budget,
            cfg.block_size, cfg.num_blocks, self.kv_blocks_used, decode, parts)
        if error:
            self._raise_infeasible(error, value, decision, blocks_after)
        if len(ids) == 0:
            return self._idle(decision, blocks_after)
        num_prefills = len(ids) - num_decodes
        batch = Batch(parts[0, :num_prefills], parts[1, :num_prefills], parts[2, :num_decodes], prefill_samples)
        if self.with_breakdown:
            batch_time, breakdown = self.cost_model.price(batch)
        else:
            batch_time, breakdown = self.cost_model.batch_time(batch), None
        if not batch_time > 0:
            raise InfeasibleDecisionError(f"cost model returned a non-positive batch time {batch_time!r} for {batch}")

        start = self.clock
        end = start + batch_time
        area = (len(self.waiting) + len(self.resident)) * batch_time
        emitted, finished, finished_blocks = self._apply(ids, tokens, evict, start, end)
        self.kv_blocks_used = blocks_after - finished_blocks
        self.num_iterations += 1
        self.total_batch_time += batch_time
        log = self.log
        log.start.append(start)
        log.batch_time.append(batch_time)
        log.kv_blocks.append(blocks_after)
        log.tokens.append(total_tokens)
        log.decisions.append(decision)
        log.decode.append(decode)
        self.clock = end
        area += self._admit_arrivals(end)
        area += self._skip_idle()
        self.total_latency_area += area
        return StepResult(decision, batch, batch_time, 0.0, area, emitted, finished, breakdown)

    def _apply(self, ids: np.ndarray, tokens: np.ndarray, evict: np.ndarray, start: float,
               end: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Apply checked evictions, then runs from ``start`` to ``end``, to the request arrays and queues;
        returns (ids that emitted a token, ids that finished, KV blocks the finished requests held)."""
        changed = np.empty((3, len(ids)), dtype=np.int64)
        num_emitted, num_finished, num_admitted, finished_blocks = _apply_decision(
            ids, tokens, evict, self._counts, self._times, self._flags, start, end, self.config.block_size, changed)
        if len(evict):
            evict_list = evict.tolist()
            self.resident.difference_update(evict_list)
            self.waiting.update(evict_list)
        if num_admitted:
            admitted = changed[2, :num_admitted].tolist()
            self.waiting.difference_update(admitted)
            self.resident.update(admitted)
        finished = changed[1, :num_finished]
        if num_finished:
            self.resident.difference_update(finished.tolist())
            self.num_done += num_finished
        return changed[0, :num_emitted], finished, finished_blocks

    def _raise_infeasible(self, error: int, value: int, decision: Decision, blocks_after: int) -> None:
        """Raise the :class:`InfeasibleDecisionError` for ``_check_decision``'s ``error`` about ``value``."""
        ids, tokens, evict = decision.run_ids, decision.run_tokens, decision.evict_ids
        cfg = self.config
        if error == _DUPLICATE_EVICTION:
            message = f"evict_ids has duplicates: {evict.tolist()}"
        elif error == _NOT_RESIDENT:
            message = f"cannot evict request {value}: it holds no KV (not resident)"
        elif error == _BATCH_SIZE:
            message = f"batch size exceeded: {len(ids)} requests run but max_batch_size = {cfg.max_batch_size}"
        elif error == _TOKEN_BUDGET:
            message = (f"token budget exceeded: {value} tokens but C = {cfg.token_budget}; over by "
                       f"{value - cfg.token_budget}")
        elif error == _NOT_ARRIVED:
            what = "does not exist" if not 0 <= value < self.num_requests else \
                f"has not arrived (arrives at {self.arrival[value]:.6f} s, clock {self.clock:.6f} s)"
            message = f"cannot run request {value}: it {what}"
        elif error == _DUPLICATE_RUN:
            message = f"run_ids has duplicates: {ids.tolist()}"
        elif error == _RUN_CLOSED:
            message = f"cannot run request {value}: it is {'rejected' if self._rejected[value] else 'finished'}"
        elif error == _EVICTED_AND_RUN:
            message = f"request {value} is both evicted and run in the same iteration"
        elif error == _TOKEN_RANGE:
            r = ids[value]
            message = (f"request {r} asked to compute {tokens[value]} tokens; it must compute between 1 and "
                       f"{self.need(r)} (prompt {self.prompt_len[r]}, generated {self.generated[r]}, KV {self.kv[r]})")
        else:
            message = (f"KV capacity exceeded: the iteration needs {blocks_after * cfg.block_size} KV tokens "
                       f"({blocks_after} blocks of {cfg.block_size}) but M = {cfg.kv_capacity}; over by "
                       f"{(blocks_after - cfg.num_blocks) * cfg.block_size} tokens")
        raise InfeasibleDecisionError(message)

    def _idle(self, decision: Decision, blocks_after: int) -> StepResult:
        """An empty batch after the decision's checked evictions (``blocks_after`` KV blocks left in use): wait
        for the next arrival."""
        target = self.next_arrival_time
        if target == float("inf"):
            raise InfeasibleDecisionError(
                f"empty decision with {len(self.waiting) + len(self.resident)} unfinished requests and no future "
                f"arrivals: the simulation would never progress")
        self._apply(_NO_IDS, _NO_IDS, decision.evict_ids, self.clock, self.clock)
        self.kv_blocks_used = blocks_after
        idle = target - self.clock
        area = (len(self.waiting) + len(self.resident)) * idle
        self.clock = target
        area += self._admit_arrivals(target)
        self.total_idle_time += idle
        self.total_latency_area += area
        return StepResult(decision, Batch(), 0.0, idle, area, _NO_IDS, _NO_IDS,
                          dict.fromkeys(BREAKDOWN_KEYS, 0.0) if self.with_breakdown else None)

    def _admit_arrivals(self, now: float) -> float:
        """Make requests arriving by ``now`` visible; returns their time in the system before ``now``."""
        area = 0.0
        i = self._next_arrival
        n = self.num_requests
        arrival, rejected = self._arrival, self._rejected
        while i < n and arrival[i] <= now:
            if not rejected[i]:
                self.waiting.add(i)
                area += now - arrival[i]
            i += 1
        self._next_arrival = i
        return float(area)

    def _skip_idle(self) -> float:
        """With nothing in the system, jump the clock to the next arrival."""
        if self.waiting or self.resident or self.done:
            return 0.0
        target = self.next_arrival_time
        self.total_idle_time += target - self.clock
        self.clock = target
        return self._admit_arrivals(target)

    # ---- driving -------------------------------------------------------------------------------
    def run(self, scheduler: Scheduler, max_iterations: int | None = None, progress: bool = False) -> RunMetrics:
        """Drive the simulator with ``scheduler`` until every request is done; returns the metrics.

        ``max_iterations`` (default: 50 x the total tokens of the workload + 1000) bounds the run so a
        scheduler that stops making progress raises instead of hanging. A scheduler's ``on_step`` method, if it
        has one, gets each step's :class:`StepResult`.
        """
        if max_iterations is None:
            max_iterations = 50 * int(self.prompt_len.sum() + self.output_len.sum()) + 1000
        scheduler.reset(self)
        on_step: Callable[[StepResult], Any] | None = getattr(scheduler, "on_step", None)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.num_requests, desc=type(scheduler).__name__, unit="req")
        try:
            while not self.done:
                if self.num_iterations >= max_iterations:
                    raise RuntimeError(f"{type(scheduler).__name__} did not finish within {max_iterations} iterations "
                                       f"({self.num_done}/{self.num_requests} requests done)")
                before = self.num_done
                result = self.step(scheduler.decide(self))
                if on_step is not None:
                    on_step(result)
                if bar is not None and self.num_done != before:
                    bar.update(self.num_done - before)
        finally:
            if bar is not None:
                bar.close()
        return compute_metrics(self)


# ---- compiled kernels of the step ---------------------------------------------------------------------------
# Error codes of _check_decision, in the order the constraints are checked (Simulator._raise_infeasible words
# them).
_DUPLICATE_EVICTION, _NOT_RESIDENT, _BATCH_SIZE, _TOKEN_BUDGET, _NOT_ARRIVED, _DUPLICATE_RUN, _RUN_CLOSED, \
    _EVICTED_AND_RUN, _TOKEN_RANGE, _KV_CAPACITY = range(1, 11)


@njit(cache=True)
def _has_duplicates(values: np.ndarray) -> bool:
    """Whether a value occurs twice."""
    increasing = True  # strictly increasing values (the common case) need no sort
    for j in range(1, len(values)):
        if values[j] <= values[j - 1]:
            increasing = False
            break
    if increasing:
        return False
    ordered = np.sort(values)
    for j in range(1, len(ordered)):
        if ordered[j] == ordered[j - 1]:
            return True
    return False


@njit(cache=True)
def _check_decision(ids: np.ndarray, tokens: np.ndarray, evict: np.ndarray, counts: np.ndarray, closed: np.ndarray,
                    num_arrived: int, max_batch_size: int, token_budget: int, block_size: int, num_blocks: int,
                    kv_blocks_used: int) -> tuple[int, int, int, int]:
    """Check a decision against every constraint without changing anything (``counts`` is Simulator.counts).

    Returns (error, value, total tokens, KV blocks in use after the iteration): ``error`` is 0 when feasible,
    else the code of the first violated constraint and ``value`` the offending request id, position in
    ``ids`` or token total. Resident requests are exactly those holding KV (``kv > 0``)."""
    kv, generated, prompt_len = counts[layout.KV], counts[layout.GENERATED], counts[layout.PROMPT_LEN]
    if _has_duplicates(evict):
        return _DUPLICATE_EVICTION, 0, 0, 0
    freed_blocks = 0
    for r in evict:
        if not 0 <= r < num_arrived or kv[r] == 0:
            return _NOT_RESIDENT, r, 0, 0
        freed_blocks += ceil_blocks(kv[r], block_size)
    if len(ids) == 0:
        return 0, 0, 0, kv_blocks_used - freed_blocks
    if len(ids) > max_batch_size:
        return _BATCH_SIZE, 0, 0, 0
    total = tokens.sum()
    if total > token_budget:
        return _TOKEN_BUDGET, total, 0, 0
    for r in ids:
        if not 0 <= r < num_arrived:
            return _NOT_ARRIVED, r, 0, 0
    if _has_duplicates(ids):
        return _DUPLICATE_RUN, 0, 0, 0
    for r in ids:
        if closed[r]:
            return _RUN_CLOSED, r, 0, 0
    both = -1
    for r in evict:
        if both == -1 or r < both:
            for run in ids:
                if run == r:
                    both = r
                    break
    if both != -1:
        return _EVICTED_AND_RUN, both, 0, 0
    added_blocks = 0
    for j in range(len(ids)):
        r = ids[j]
        kv_before = kv[r]
        if not 1 <= tokens[j] <= prompt_len[r] + generated[r] - kv_before:
            return _TOKEN_RANGE, j, 0, 0
        added_blocks += ceil_blocks(kv_before + tokens[j], block_size) - ceil_blocks(kv_before, block_size)
    blocks_after = kv_blocks_used - freed_blocks + added_blocks
    if blocks_after > num_blocks:
        return _KV_CAPACITY, 0, total, blocks_after
    return 0, 0, total, blocks_after


@njit(cache=True)
def _check_and_split(ids: np.ndarray, tokens: np.ndarray, evict: np.ndarray, counts: np.ndarray, closed: np.ndarray,
                     num_arrived: int, max_batch_size: int, token_budget: int, block_size: int, num_blocks: int,
                     kv_blocks_used: int, decode: np.ndarray, parts: np.ndarray) -> tuple[int, int, int, int, int, int]:
    """:func:`_check_decision`, then for a feasible decision :func:`_split_batch` into ``decode`` and ``parts``, in
    one call (each kernel call costs a microsecond or two): returns the check's four values, the decodes and the
    prefill chunks that emit a token (zeros when infeasible)."""
    error, value, total, blocks_after = _check_decision(ids, tokens, evict, counts, closed, num_arrived,
                                                        max_batch_size, token_budget, block_size, num_blocks,
                                                        kv_blocks_used)
    if error:
        return error, value, total, blocks_after, 0, 0
    num_decodes, prefill_samples = _split_batch(ids, tokens, counts, decode, parts)
    return 0, 0, total, blocks_after, num_decodes, prefill_samples


@njit(cache=True)
def _split_batch(ids: np.ndarray, tokens: np.ndarray, counts: np.ndarray, decode: np.ndarray,
                 parts: np.ndarray) -> tuple[int, int]:
    """Split checked runs into the batch's parts: ``decode[j]`` says whether run j is a decode; rows of ``parts``
    (3, n) get the prefill new tokens, the prefill cached tokens and the decode contexts, each in run order from
    column 0. Returns (decodes, prefill chunks that emit a token).

    Kernels write into arrays the caller allocates because returning an array from a kernel costs more than the
    rest of this function."""
    kv, generated, prompt_len = counts[layout.KV], counts[layout.GENERATED], counts[layout.PROMPT_LEN]
    num_decodes = prefill_samples = p = 0
    for j in range(len(ids)):
        r = ids[j]
        need = prompt_len[r] + generated[r] - kv[r]
        decode[j] = generated[r] > 0 and need == 1
        if decode[j]:
            parts[2, num_decodes] = kv[r]
            num_decodes += 1
        else:
            prefill_samples += tokens[j] == need
            parts[0, p] = tokens[j]
            parts[1, p] = kv[r]
            p += 1
    return num_decodes, prefill_samples


@njit(cache=True)
def _apply_decision(ids: np.ndarray, tokens: np.ndarray, evict: np.ndarray, counts: np.ndarray, times: np.ndarray,
                    flags: np.ndarray, start: float, end: float, block_size: int,
                    changed: np.ndarray) -> tuple[int, int, int, int]:
    """Apply checked evictions, then runs from ``start`` to ``end``, to the packed request arrays.

    Rows of ``changed`` (3, runs) get the ids that emitted a token, that finished and that were admitted to the
    cache, in run order from column 0; returns (emitted, finished, admitted, KV blocks the finished requests
    held)."""
    kv, generated, prompt_len = counts[layout.KV], counts[layout.GENERATED], counts[layout.PROMPT_LEN]
    output_len, recomputed_tokens = counts[layout.OUTPUT_LEN], counts[layout.RECOMPUTED_TOKENS]
    num_preemptions, kv_at_finish = counts[layout.NUM_PREEMPTIONS], counts[layout.KV_AT_FINISH]
    first_scheduled_time, first_token_time = times[layout.FIRST_SCHEDULED_TIME], times[layout.FIRST_TOKEN_TIME]
    finish_time, finished, closed = times[layout.FINISH_TIME], flags[layout.FINISHED], flags[layout.CLOSED]
    for r in evict:
        recomputed_tokens[r] += kv[r]
        num_preemptions[r] += 1
        kv[r] = 0
    num_emitted = num_done = num_admitted = finished_blocks = 0
    for j in range(len(ids)):
        r = ids[j]
        kv_before = kv[r]
        if kv_before == 0:
            changed[2, num_admitted] = r
            num_admitted += 1
            if np.isnan(first_scheduled_time[r]):
                first_scheduled_time[r] = start
        kv[r] = kv_before + tokens[j]
        if tokens[j] != prompt_len[r] + generated[r] - kv_before:
            continue
        generated[r] += 1
        changed[0, num_emitted] = r
        num_emitted += 1
        if generated[r] == 1:
            first_token_time[r] = end
        if generated[r] == output_len[r]:
            changed[1, num_done] = r
            num_done += 1
            finished_blocks += ceil_blocks(kv[r], block_size)
            kv_at_finish[r] = kv[r]
            kv[r] = 0
            finish_time[r] = end
            finished[r] = True
            closed[r] = True
    return num_emitted, num_done, num_admitted, finished_blocks
