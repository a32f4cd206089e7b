"""The one batch builder every heuristic scheduler in :mod:`baselines` is a configuration of.

A scheduler here is four choices:

* an :class:`Order` (priority; lower key runs first, ties by request id),
* an :class:`Eviction` rule (which resident request loses its KV first when the running work does not fit),
* a :class:`Reservation` rule (how much KV a request is expected to need; a waiting request is admitted only
  when its reservation fits beside the outstanding reservations of the resident ones),
* a batch structure: ``prefill_first`` (vLLM v0: an iteration of new prefills whenever one can be admitted,
  otherwise an iteration of resident work) or mixed (Sarathi/Orca: resident work and new prefills share each
  iteration), with ``decodes_first`` (decodes, then partial prefills, then new prefills, each group in
  priority order) or one global priority order, and ``chunked`` prefills (a prefill takes what is left of the
  token budget) or whole ones (a prefill runs only when all of it fits in the budget; a prefill larger than
  the whole budget runs in budget-sized chunks so every request stays servable).

Each iteration :meth:`BatchBuilderScheduler.decide` does, with numpy on the resident set and the head of
the waiting queue:

1. headroom = free KV - outstanding reservation of every resident request (at least its growth this
   iteration);
2. admissible waiting requests = the longest prefix of the waiting queue (priority order) whose
   reservations fit in the headroom (head-of-line blocking, as vLLM does);
3. the token budget (``min(C, chunk_size)``) is filled in priority order over residents and admissible
   waiting requests, and at most ``min(max_batch_size, max_batch)`` requests run;
4. if the running residents' new KV does not fit (reservations were exceeded), resident requests are
   evicted in the eviction rule's order (never the last one) and the batch is rebuilt from the rest.

The waiting queue is kept sorted incrementally (:class:`WaitingQueue`), so an iteration costs time in the
number of resident requests and changed requests, not in the size of the workload. Orders whose key for a
waiting request changes while it waits (learned predictions) declare ``dynamic = True``; the queue is then
re-keyed every ``refresh_interval`` iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from infermax_env.simulator import Decision, Simulator

from .tracking import NO_IDS, StepEvents, StepTracker

_INITIAL_HEAD = 64


class OracleRequiredError(RuntimeError):
    """An oracle scheduler was asked to run where output lengths are hidden (``Simulator(oracle=False)``)."""


class Rule:
    """Base of orders, eviction rules and reservations: optional state updated from step events."""

    requires_oracle: ClassVar[bool] = False

    def reset(self, sim: Simulator) -> None:
        """Called when a run starts."""

    def observe(self, sim: Simulator, events: StepEvents) -> None:
        """Called at the start of every decision with what changed since the previous one."""


class Order(Rule):
    """Priority: ``keys(sim, ids)`` returns one float per request, lower runs (and is admitted) first."""

    dynamic: ClassVar[bool] = False
    """True when a waiting request's key can change while it waits (the queue is then re-keyed)."""
    increasing_in_id: ClassVar[bool] = False
    """True when keys increase with the request id (arrival order): sorting ids then sorts keys."""

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Eviction(Rule):
    """Victim choice: ``victim_keys`` returns one float per resident request, lower is evicted first (ties:
    the newest request first). ``priority_keys`` are the order's keys for the same requests."""

    def victim_keys(self, sim: Simulator, ids: np.ndarray, priority_keys: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Reservation(Rule):
    """KV tokens a request is expected to hold; ``targets`` returns one integer per request. The builder
    reserves at least the remaining prefill of a prefilling request (I + generated) and the current KV of a
    decoding one, so a rule returning 0 reserves just that."""

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class WaitingQueue:
    """Waiting request ids sorted by (key, id), updated incrementally.

    ``member[r]`` tells whether request ``r`` is queued. Insertions cost a binary search plus one array
    copy; removing a prefix (the usual admission) is a slice.
    """

    def __init__(self, num_requests: int):
        self.ids = NO_IDS
        self.keys = np.zeros(0)
        self.member = np.zeros(num_requests, dtype=bool)

    def __len__(self) -> int:
        return len(self.ids)

    def insert(self, ids: np.ndarray, keys: np.ndarray) -> None:
        if not len(ids):
            return
        keys = np.asarray(keys, dtype=np.float64)
        if len(ids) > 1:
            order = np.lexsort((ids, keys))
            ids, keys = ids[order], keys[order]
        if not len(self.keys) or keys[0] > self.keys[-1]:  # the usual arrival: everything goes after the tail
            self.ids = np.concatenate((self.ids, ids))
            self.keys = np.concatenate((self.keys, keys))
            self.member[ids] = True
            return
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        for j in np.flatnonzero(hi > lo).tolist():  # equal keys: place by id among them
            lo[j] += np.searchsorted(self.ids[lo[j]:hi[j]], ids[j])
        if len(ids) == 1:
            at = int(lo[0])
            self.ids = np.concatenate((self.ids[:at], ids, self.ids[at:]))
            self.keys = np.concatenate((self.keys[:at], keys, self.keys[at:]))
        else:
            self.ids = np.insert(self.ids, lo, ids)
            self.keys = np.insert(self.keys, lo, keys)
        self.member[ids] = True

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        self.member[ids] = False
        k = len(ids)
        if not np.count_nonzero(self.member[self.ids[:k]]):
            self.ids, self.keys = self.ids[k:], self.keys[k:]
        else:
            keep = self.member[self.ids]
            self.ids, self.keys = self.ids[keep], self.keys[keep]

    def rebuild(self, ids: np.ndarray, keys: np.ndarray) -> None:
        """Replace the contents with ``ids`` keyed by ``keys``."""
        self.member[self.ids] = False
        self.ids, self.keys = NO_IDS, np.zeros(0)
        self.insert(np.asarray(ids, dtype=np.int64), keys)


class BatchBuilderScheduler:
    """A scheduler made of an order, an eviction rule, a reservation rule and a batch structure (see the
    module docstring for the exact per-iteration procedure).

    Args:
        order: priority of requests.
        eviction: which resident request is evicted first under memory pressure.
        reservation: admission rule (KV set aside per request).
        prefill_first: vLLM v0 structure (prefill-only iterations whenever a waiting request is admissible).
        decodes_first: decodes, then partial prefills, then new prefills (each by ``order``); otherwise one
            global order over all requests.
        chunked: prefills take whatever is left of the budget; otherwise only whole prefills run.
        chunk_size: per-iteration token budget (Sarathi-Serve's chunk size), capped at C; None uses C.
        max_batch: most requests per iteration, besides the engine's ``max_batch_size``; None for no extra cap.
        refresh_interval: iterations between re-keying the waiting queue when the order is dynamic.
    """

    name: ClassVar[str] = ""
    requires_oracle: ClassVar[bool] = False

    def __init__(self, *, order: Order, eviction: Eviction, reservation: Reservation, prefill_first: bool = False,
                 decodes_first: bool = True, chunked: bool = True, chunk_size: int | None = None,
                 max_batch: int | None = None, refresh_interval: int = 200):
        for value, label in ((chunk_size, "chunk_size"), (max_batch, "max_batch")):
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{type(self).__name__}: {label} must be a positive integer or None, got {value!r}")
        if not isinstance(refresh_interval, (int, np.integer)) or refresh_interval < 1:
            raise ValueError(f"{type(self).__name__}: refresh_interval must be a positive integer, "
                             f"got {refresh_interval!r}")
        self.order = order
        self.eviction = eviction
        self.reservation = reservation
        self.prefill_first = prefill_first
        self.decodes_first = decodes_first
        self.chunked = chunked
        self.chunk_size = chunk_size
        self.max_batch = max_batch
        self.refresh_interval = int(refresh_interval)
        self._tracker = StepTracker()
        self._queue = WaitingQueue(0)
        self._since_refresh = 0
        self._observers: list = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.order, self.eviction, self.reservation

    # ---- protocol ------------------------------------------------------------------------------
    def reset(self, sim: Simulator) -> None:
        """Start a run on ``sim``; raises :class:`OracleRequiredError` for an oracle scheduler on a simulator
        that hides output lengths."""
        needs_oracle = self.requires_oracle or any(rule.requires_oracle for rule in self.rules)
        if needs_oracle and not sim.oracle:
            raise OracleRequiredError(
                f"scheduler {self.name!r} reads output lengths of unfinished requests (an oracle scheduler) but the "
                f"simulator hides them (Simulator(oracle=False)); use a non-oracle scheduler or oracle=True")
        self._tracker.reset()
        self._queue = WaitingQueue(sim.num_requests)
        self._since_refresh = 0
        for rule in self.rules:
            rule.reset(sim)
        self._observers = [rule.observe for rule in self.rules if type(rule).observe is not Rule.observe]
        if type(self).observe is not BatchBuilderScheduler.observe:
            self._observers.append(self.observe)

    def decide(self, sim: Simulator) -> Decision:
        """The next iteration's batch and evictions (see the module docstring)."""
        self._sync(sim)
        free = sim.config.num_blocks - sim.kv_blocks_used
        residents = self._residents(sim)
        if self.prefill_first and len(self._queue):
            decision = self._admit_only(sim, residents, free)
            if decision is not None:
                return decision
        return self._mixed(sim, residents, free, admit=not self.prefill_first)

    # ---- hooks for subclasses ------------------------------------------------------------------
    def observe(self, sim: Simulator, events: StepEvents) -> None:
        """Scheduler-level state update, after the rules observed ``events``."""

    def waiting_candidates(self, sim: Simulator, count: int) -> np.ndarray:
        """The first ``count`` waiting requests that may be admitted, in priority order."""
        return self._queue.ids[:count]

    def adjust_tokens(self, sim: Simulator, ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Final say on the chunk sizes of the requests about to run (each may only shrink, to >= 1; a decode
        must keep its 1 token); the default keeps them."""
        return tokens

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _sync(self, sim: Simulator) -> None:
        events = self._tracker.advance(sim)
        for observe in self._observers:
            observe(sim, events)
        queue = self._queue
        if len(queue.member) != sim.num_requests:
            self._queue = queue = WaitingQueue(sim.num_requests)
        if events.exact:
            ran = events.ran
            if len(ran):
                queue.remove(ran[queue.member[ran]])
            for entered in (events.evicted, events.arrived):
                if len(entered):
                    queue.insert(entered, self.order.keys(sim, entered))
        self._since_refresh += 1
        stale = self.order.dynamic and self._since_refresh >= self.refresh_interval
        if not events.exact or stale or len(queue) != len(sim.waiting):
            waiting = sim.waiting_ids()
            queue.rebuild(waiting, self.order.keys(sim, waiting))
            self._since_refresh = 0

    def _residents(self, sim: Simulator) -> "Residents":
        ids = sim.resident_ids()
        if self.order.increasing_in_id and not self.decodes_first:
            ids.sort()
            kv = sim.kv[ids]
            return Residents(ids, kv, sim.prompt_len[ids] + sim.generated[ids] - kv, self.order.keys(sim, ids))
        keys = self.order.keys(sim, ids)
        generated = sim.generated[ids]
        kv = sim.kv[ids]
        need = sim.prompt_len[ids] + generated - kv
        if self.decodes_first:
            rank = np.lexsort((ids, keys, (need > 1) | (generated == 0)))
        else:
            rank = np.lexsort((ids, keys))
        return Residents(ids[rank], kv[rank], need[rank], keys[rank])

    def _reserved_blocks(self, sim: Simulator, residents: "Residents", grow: np.ndarray | int) -> int:
        """KV blocks set aside for resident requests: the larger of their reservation and their KV after
        growing by ``grow`` tokens, minus what they hold."""
        ids, kv, need = residents.ids, residents.kv, residents.need
        if not len(ids):
            return 0
        decoding = (need == 1) & (sim.generated[ids] > 0)
        target = np.maximum(self.reservation.targets(sim, ids), np.where(decoding, kv, kv + need))
        target = np.maximum(target, kv + grow)
        if sim.config.block_size == 1:
            return int((target - kv).sum())
        return int((sim.config.blocks(target) - sim.config.blocks(kv)).sum())

    # ---- the two iteration kinds ---------------------------------------------------------------
    def _budget(self, sim: Simulator) -> int:
        budget = sim.config.token_budget
        return budget if self.chunk_size is None else min(budget, int(self.chunk_size))

    def _slots(self, sim: Simulator) -> int:
        slots = sim.config.max_batch_size
        return slots if self.max_batch is None else min(slots, int(self.max_batch))

    def _fill(self, want: np.ndarray, budget: int, slots: int) -> np.ndarray:
        """Tokens per candidate (0 = not run), filling ``budget`` in candidate order."""
        if not self.chunked:
            want = np.minimum(want, budget)
        if len(want) <= slots and want.sum() <= budget:
            return want
        if self.chunked:
            tokens = np.clip(budget - (want.cumsum() - want), 0, want)
        else:
            tokens = np.where(want.cumsum() <= budget, want, 0)
        if np.count_nonzero(tokens) > slots:
            tokens = np.where(np.cumsum(tokens > 0) <= slots, tokens, 0)
        return tokens

    def _admissible(self, sim: Simulator, candidates: np.ndarray, headroom: int) -> int:
        """How many of ``candidates`` (in order) fit their reservations in ``headroom`` blocks."""
        if headroom <= 0 or not len(candidates):
            return 0
        capacity = sim.config.num_blocks * sim.config.block_size  # a reservation never exceeds an empty cache
        reserved = self.reservation.targets(sim, candidates)
        if len(candidates) == 1:  # the usual question (is the head admissible?), on Python ints
            r = int(candidates[0])
            target = min(max(int(reserved[0]), int(sim.prompt_len[r]) + int(sim.generated[r])), capacity)
            return int(sim.config.blocks(target) <= headroom)
        floor = sim.prompt_len[candidates] + sim.generated[candidates]
        target = np.minimum(np.maximum(reserved, floor), capacity)
        return int(np.count_nonzero(sim.config.blocks(target).cumsum() <= headroom))

    def _admit(self, sim: Simulator, headroom: int, want_of_residents: np.ndarray | None,
               residents: "Residents") -> tuple[np.ndarray, np.ndarray]:
        """Candidates (resident ones first when given, then the admissible head of the waiting queue, merged
        by priority unless decodes go first) and their tokens.

        The head of the waiting queue is looked at 64 requests at a time, growing while every request looked
        at is admitted and gets tokens.
        """
        budget, slots = self._budget(sim), self._slots(sim)
        with_residents = want_of_residents is not None and len(residents.ids) > 0
        if headroom <= 0 or self._admissible(sim, self.waiting_candidates(sim, 1), headroom) == 0:
            # The head of the queue is blocked, so nothing behind it is admitted.
            if not with_residents:
                return NO_IDS, NO_IDS
            return residents.ids, self._fill(want_of_residents, budget, slots)
        count = _INITIAL_HEAD
        while True:
            head = self.waiting_candidates(sim, count)
            admitted = head[:self._admissible(sim, head, headroom)]
            ids, want = admitted, sim.prompt_len[admitted] + sim.generated[admitted] - sim.kv[admitted]
            if with_residents:
                ids = np.concatenate((residents.ids, admitted))
                want = np.concatenate((want_of_residents, want))
                if len(admitted) and not self.decodes_first:
                    keys = np.concatenate((residents.keys, self._queue_keys(sim, admitted)))
                    rank = np.lexsort((ids, keys))
                    ids, want = ids[rank], want[rank]
            tokens = self._fill(want, budget, slots)
            if not (len(head) == count and len(admitted) == count and np.count_nonzero(tokens) == len(tokens)):
                return ids, tokens
            count *= 4

    def _admit_only(self, sim: Simulator, residents: "Residents", free: int) -> Decision | None:
        """vLLM's prefill iteration: only new prefills, if any is admissible."""
        if self._admissible(sim, self.waiting_candidates(sim, 1), free) == 0:
            return None
        headroom = free - self._reserved_blocks(sim, residents, 0)
        ids, tokens = self._admit(sim, headroom, None, residents)
        chosen = tokens > 0
        if not np.count_nonzero(chosen):
            return None
        ids = ids[chosen]
        return Decision(ids, self.adjust_tokens(sim, ids, tokens[chosen]))

    def _mixed(self, sim: Simulator, residents: "Residents", free: int, admit: bool) -> Decision:
        """Resident work plus (when ``admit``) new prefills in one iteration, evicting if it does not fit."""
        need = residents.need
        headroom = free - self._reserved_blocks(sim, residents, np.minimum(need, self._budget(sim))) if admit else 0
        ids, tokens = self._admit(sim, headroom, need, residents)
        if np.count_nonzero(tokens) < len(tokens):  # count_nonzero: much cheaper than .all() on small arrays
            chosen = tokens > 0
            ids, tokens = ids[chosen], tokens[chosen]
        kv = sim.kv[ids]
        if sim.config.block_size == 1:
            added = int(tokens.sum())
        else:
            added = int((sim.config.blocks(kv + tokens) - sim.config.blocks(kv)).sum())
        evict = NO_IDS
        if added > free:
            # Only resident work can overflow: admitted requests fit beside every resident's reservation.
            ids, tokens, evict = self._evict_and_rebuild(sim, residents, free)
        return Decision(ids, self.adjust_tokens(sim, ids, tokens), evict)

    def _queue_keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        """Keys of queued requests (the head of the queue, in order)."""
        head = self._queue.ids[:len(ids)]
        if np.array_equal(head, ids):
            return self._queue.keys[:len(ids)]
        return self.order.keys(sim, ids)

    def _evict_and_rebuild(self, sim: Simulator, residents: "Residents",
                           free: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Evict residents (rule order, never the last) until the resident-only batch fits."""
        ids, kv, need = residents.ids, residents.kv, residents.need
        budget, slots = self._budget(sim), self._slots(sim)
        victim_rank = np.lexsort((-ids, self.eviction.victim_keys(sim, ids, residents.keys)))
        evicted = np.zeros(len(ids), dtype=bool)
        while True:
            keep = ~evicted
            tokens = np.zeros(len(ids), dtype=np.int64)
            tokens[keep] = self._fill(need[keep], budget, slots)
            added = sim.config.blocks(kv + tokens) - sim.config.blocks(kv)
            overflow = int(added.sum()) - free
            if overflow <= 0:
                break
            order = victim_rank[keep[victim_rank]][:-1]  # candidates, never the last resident
            if not len(order):
                raise RuntimeError(f"{self.name}: request {int(ids[keep][0])} alone does not fit in the KV cache")
            gain = np.cumsum(sim.config.blocks(kv[order]) + added[order])
            count = int(np.searchsorted(gain, overflow, side="left")) + 1
            victims = order[:count]
            evicted[victims] = True
            free += int(sim.config.blocks(kv[victims]).sum())
        chosen = tokens > 0
        return ids[chosen], tokens[chosen], ids[victim_rank[evicted[victim_rank]]]


@dataclass(slots=True, eq=False)  # array fields: identity comparison
class Residents:
    """Resident requests in batch order (decodes first when configured, then by priority key, then id)."""

    ids: np.ndarray
    kv: np.ndarray
    need: np.ndarray
    keys: np.ndarray
