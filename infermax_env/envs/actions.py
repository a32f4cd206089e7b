"""Action modes: how an action over the K slots becomes a feasible :class:`Decision`, and back.

Every mode uses the simulator's own quantities (``need``, KV blocks, free blocks, the engine limits); the
:class:`Decision` it produces is checked again by :meth:`Simulator.step`, so the env cannot diverge from the
simulator's semantics.

* ``select``: ``MultiDiscrete([3] * K)``, per slot 0 = leave, 1 = run, 2 = evict (resident slots only).
  Evictions apply first. Runs are taken decodes first, then prefills, each group in slot order; the batch
  closes at the first run that does not fully fit the token budget, the batch size or the free KV memory,
  and that run, when it is a prefill, is chunked to what remains (if at least one token fits). The runs
  that did not fit are counted in ``info["repairs"]["dropped"]``.
* ``priority``: ``Box(-1, 1, (K,))`` scores (any finite value is accepted: only the ranking matters; ties
  keep slot order; an infinite score of a filled slot is a ValueError, a NaN one an invalid choice). Valid slots are visited by decreasing score; each computes ``min(need, budget left)``
  tokens; when its KV does not fit, the lowest-scored resident requests ranked below it are evicted (lowest
  first) until it fits, or, for a prefill that still cannot fit whole, it is chunked to the memory left.
  Always feasible. FCFS is ``-arrival``, SJF ``-prompt_len``, SRF ``tokens_computed``.
* ``sequential``: ``Discrete(2K + 1)``: ``i < K`` adds slot i to the batch being built (with
  ``min(need, budget left, memory left)`` tokens), ``K + i`` marks slot i for eviction, ``2K`` launches the
  batch; only a launch moves the clock. The mask is exact: an add is allowed iff the request is in the
  window, not yet added nor marked, the batch has room, and at least one of its tokens fits the budget and
  the memory left; an eviction iff the slot is resident and neither added nor marked; the launch iff the
  batch is non-empty or nothing can be added any more.

Invalid choices (what the mask forbids: running an empty slot, evicting a request that holds no KV, a masked
sequential action) are repaired and counted in ``info["repairs"]["invalid"]`` (or raise
:class:`InvalidActionError` with ``strict=True``): select and priority ignore them; in the sequential mode
a masked action launches the batch built so far. Actions of the wrong shape, dtype or range always raise
``ValueError``.

Livelock rule: when an action would run nothing, the env never idles; it runs the earliest-arrived unfinished
request not being evicted (a chunk of ``min(need, C, memory)`` tokens), evicting the latest-arrived resident
requests first if not even one token fits (``info["repairs"]["livelock"]``; an error with ``strict=True``,
except for a sequential launch the mask allowed).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from numba import njit

from ..errors import InfeasibleDecisionError
from ..layout import ceil_blocks
from ..simulator import Decision, Simulator
from .window import Window

LEAVE, RUN, EVICT = 0, 1, 2


class InvalidActionError(InfeasibleDecisionError):
    """An action chose something its mask forbids (raised only with ``strict=True``)."""


class NotExpressibleError(ValueError):
    """A scheduler's :class:`Decision` cannot be written exactly as an action of this mode."""


@dataclass(slots=True)
class Repairs:
    """What the env changed in an action: ``invalid`` masked choices ignored, ``dropped`` runs that did not fit
    the budget, batch size or memory, ``livelock`` when the livelock rule chose the batch."""

    invalid: int = 0
    dropped: int = 0
    livelock: bool = False

    def as_dict(self) -> dict[str, int]:
        return {"invalid": self.invalid, "dropped": self.dropped, "livelock": int(self.livelock)}


def same_decision(a: Decision, b: Decision) -> bool:
    """Equal runs (ids with their tokens) and evictions, in any order."""
    return (dict(zip(a.run_ids.tolist(), a.run_tokens.tolist())) == dict(zip(b.run_ids.tolist(), b.run_tokens.tolist()))
            and sorted(a.evict_ids.tolist()) == sorted(b.evict_ids.tolist()))


def tokens_fitting(sim: Simulator, win: Window, slots: np.ndarray | int, free_blocks: int) -> np.ndarray | int:
    """The most tokens each slot's request could add to its KV with ``free_blocks`` blocks free."""
    return _fitting.py_func(win.kv_blocks[slots], win.kv[slots], free_blocks, sim.config.block_size)


def livelock_decision(sim: Simulator, evict_ids: np.ndarray) -> Decision:
    """The livelock rule (module docstring): run the earliest-arrived unfinished request not being evicted.
    ``evict_ids`` are resident requests (every mode evicts only those)."""
    evicting = set(evict_ids.tolist())
    kept = [r for r in sim.resident if r not in evicting]
    if kept or sim.waiting:
        target = min(min(kept, default=sim.num_requests), min(sim.waiting, default=sim.num_requests))
    else:  # the action evicts everything there is: keep the oldest, evict the rest
        target = min(sim.resident)
        evicting.discard(target)
    cfg = sim.config
    free = cfg.num_blocks - sim.kv_blocks_used + int(cfg.blocks(sim.kv[list(evicting)]).sum())
    block = cfg.block_size
    kv = int(sim.kv[target])
    if (cfg.blocks(kv) + free) * block - kv < 1:  # evict the latest-arrived residents until a token fits
        for victim in sorted(sim.resident, reverse=True):
            if victim != target and victim not in evicting:
                evicting.add(victim)
                free += int(cfg.blocks(sim.kv[victim]))
                if (cfg.blocks(kv) + free) * block - kv >= 1:
                    break
    chunk = min(int(sim.need(target)), cfg.token_budget, (cfg.blocks(kv) + free) * block - kv)
    return Decision([target], [chunk], sorted(evicting))


class ActionMode:
    """One way of acting; subclasses define the space, the mask and the conversions."""

    name = ""

    def __init__(self, window: int, strict: bool):
        self.window = window
        self.strict = strict
        self._chosen = np.empty((3, window), dtype=np.int64)  # the batch kernels' output, reused every step

    @property
    def space(self) -> gym.Space:
        raise NotImplementedError

    @property
    def mask_size(self) -> int:
        raise NotImplementedError

    def new_pending(self, sim: Simulator, win: Window) -> "PendingBatch | None":
        """State of a batch under construction (sequential mode only)."""
        return None

    def mask(self, sim: Simulator, win: Window, pending: "PendingBatch | None") -> np.ndarray:
        """Flattened boolean mask of allowed choices."""
        raise NotImplementedError

    def act(self, action, sim: Simulator, win: Window,
            pending: "PendingBatch | None") -> tuple[Decision | None, Repairs]:
        """The decision to launch (None while a sequential batch is being built) and what was repaired."""
        raise NotImplementedError

    def encode(self, decision: Decision, sim: Simulator, win: Window) -> list:
        """Actions that make the env launch exactly ``decision``; raises :class:`NotExpressibleError`."""
        raise NotImplementedError

    # ---- shared helpers --------------------------------------------------------------------------
    def _reject(self, message: str) -> None:
        if self.strict:
            raise InvalidActionError(message)

    def _window_slots(self, win: Window, ids: np.ndarray, what: str) -> np.ndarray:
        slot_of = {int(r): s for s, r in enumerate(win.ids[:win.count].tolist())}
        missing = [int(r) for r in ids.tolist() if int(r) not in slot_of]
        if missing:
            raise NotExpressibleError(f"{self.name} mode cannot {what} requests {missing}: they are outside the "
                                      f"K = {self.window} slot window (raise window=...)")
        return np.array([slot_of[int(r)] for r in ids.tolist()], dtype=np.int64)

    def _verify(self, actions: list, decision: Decision, sim: Simulator, win: Window) -> list:
        pending = self.new_pending(sim, win)
        produced = None
        for action in actions:
            produced, _ = self.act(action, sim, win, pending)
        if produced is None or not same_decision(produced, decision):
            raise NotExpressibleError(f"{self.name} mode cannot express {decision} exactly: the env would launch "
                                      f"{produced}")
        return actions

    def _decision(self, sim: Simulator, chosen: np.ndarray, num_runs: int, num_evictions: int,
                  repairs: Repairs) -> Decision:
        """The decision a batch kernel wrote into ``chosen`` (rows: run ids, their tokens, evicted ids), or the
        livelock rule's when it runs nothing. The decision's arrays share one compact copy: ``chosen`` is reused
        next step, and the simulator's log keeps each decision (not a (3, K) array per step)."""
        if num_runs == 0:
            return self._livelock(sim, chosen[2, :num_evictions].copy(), repairs)
        compact = chosen[:, :max(num_runs, num_evictions)].copy()
        return Decision(compact[0, :num_runs], compact[1, :num_runs], compact[2, :num_evictions])

    def _livelock(self, sim: Simulator, evict_ids: np.ndarray, repairs: Repairs, allowed: bool = False) -> Decision:
        if not allowed:
            self._reject("the action runs nothing while requests could run (livelock)")
        repairs.livelock = True
        return livelock_decision(sim, evict_ids)


def _integer_array(action, shape: tuple[int, ...], mode: str) -> np.ndarray:
    """``action`` as an int64 array of ``shape``; a clear ValueError if it is not integers of that shape."""
    if type(action) is np.ndarray and action.dtype == np.int64 and action.shape == shape:
        return action
    array = np.asarray(action)
    if array.shape != shape:
        raise ValueError(f"{mode} action must have shape {shape}, got {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{mode} action must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class SelectMode(ActionMode):
    """``MultiDiscrete([3] * K)``: leave / run / evict per slot."""

    name = "select"

    @property
    def space(self) -> gym.spaces.MultiDiscrete:
        return gym.spaces.MultiDiscrete(np.full(self.window, 3, dtype=np.int64))

    @property
    def mask_size(self) -> int:
        return 3 * self.window

    def mask(self, sim, win, pending=None):
        mask = np.empty((self.window, 3), dtype=bool)
        _select_mask(win.count, win.num_resident, mask)
        return mask.reshape(-1)

    def act(self, action, sim, win, pending=None):
        choice = _integer_array(action, (self.window,), self.name)
        cfg = sim.config
        chosen = self._chosen
        num_runs, num_evictions, invalid, dropped = _select_batch(
            choice, win.count, win.num_resident, win.ids, win.need, win.kv, win.kv_blocks, win.decoding,
            win.free_blocks, cfg.block_size, cfg.token_budget, cfg.max_batch_size, chosen)
        if invalid < 0:
            raise ValueError(f"select action values must be 0 (leave), 1 (run) or 2 (evict), got {choice.tolist()}")
        repairs = Repairs()
        if invalid:
            repairs.invalid = invalid
            bad_evict = np.flatnonzero(choice[win.num_resident:] == EVICT) + win.num_resident
            bad_run = np.flatnonzero(choice[win.count:] == RUN) + win.count
            self._reject(f"select action evicts non-resident slots {bad_evict.tolist()} and runs empty slots "
                         f"{bad_run.tolist()} (resident slots: 0..{win.num_resident - 1}, filled slots: "
                         f"0..{win.count - 1})")
        repairs.dropped = dropped
        return self._decision(sim, chosen, num_runs, num_evictions, repairs), repairs

    def encode(self, decision, sim, win):
        action = np.zeros(self.window, dtype=np.int64)
        action[self._window_slots(win, decision.run_ids, "run")] = RUN
        action[self._window_slots(win, decision.evict_ids, "evict")] = EVICT
        return self._verify([action], decision, sim, win)


class PriorityMode(ActionMode):
    """``Box(-1, 1, (K,))`` scores; the batch is built greedily by score with priority evictions."""

    name = "priority"

    @property
    def space(self) -> gym.spaces.Box:
        return gym.spaces.Box(-1.0, 1.0, shape=(self.window,), dtype=np.float32)

    @property
    def mask_size(self) -> int:
        return self.window

    def mask(self, sim, win, pending=None):
        return win.valid.copy()

    def act(self, action, sim, win, pending=None):
        scores = np.asarray(action)
        if scores.shape != (self.window,):
            raise ValueError(f"priority action must have shape ({self.window},), got {scores.shape}")
        if scores.dtype.kind not in "fiu":
            raise ValueError(f"priority action must be real scores, got dtype {scores.dtype}")
        repairs = Repairs()
        cfg = sim.config
        chosen = self._chosen
        num_runs, num_evictions, num_nan, infinite = _priority_batch(
            scores, win.count, win.num_resident, win.ids, win.need, win.kv, win.kv_blocks, win.free_blocks,
            cfg.block_size, cfg.token_budget, cfg.max_batch_size, chosen)
        if infinite >= 0:
            raise ValueError(f"priority scores must be finite (or NaN, an invalid choice), got {scores[infinite]} "
                             f"for slot {infinite}")
        if num_nan:
            repairs.invalid = num_nan
            self._reject(f"priority scores of slots {np.flatnonzero(np.isnan(scores[:win.count])).tolist()} are NaN")
        return self._decision(sim, chosen, num_runs, num_evictions, repairs), repairs

    def encode(self, decision, sim, win):
        run_slots = self._window_slots(win, decision.run_ids, "run")
        evict_slots = self._window_slots(win, decision.evict_ids, "evict")
        rank = list(run_slots.tolist())
        chosen = set(rank) | set(evict_slots.tolist())
        rank += [s for s in range(win.count) if s not in chosen] + evict_slots.tolist()
        scores = np.zeros(self.window, dtype=np.float32)
        scores[rank] = np.linspace(1.0, -1.0, len(rank), dtype=np.float32) if len(rank) > 1 else 1.0
        return self._verify([scores], decision, sim, win)


class PendingBatch:
    """The batch a sequential agent is building: added slots (in order) with tokens, slots marked for eviction,
    and what is left of the budget, the batch places and the free memory."""

    __slots__ = ("added", "tokens", "in_batch", "evict", "budget_left", "free_blocks")

    def __init__(self, win: Window, token_budget: int):
        size = len(win.ids)
        self.added: list[int] = []
        self.tokens: list[int] = []
        self.in_batch = np.zeros(size, dtype=bool)
        self.evict = np.zeros(size, dtype=bool)
        self.budget_left = token_budget
        self.free_blocks = win.free_blocks

    @property
    def count(self) -> int:
        return len(self.added)


class SequentialMode(ActionMode):
    """``Discrete(2K + 1)``: add slot i, evict slot i, or launch."""

    name = "sequential"

    @property
    def space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(2 * self.window + 1)

    @property
    def mask_size(self) -> int:
        return 2 * self.window + 1

    @property
    def launch(self) -> int:
        return 2 * self.window

    def new_pending(self, sim, win):
        return PendingBatch(win, sim.config.token_budget)

    def mask(self, sim, win, pending):
        k = self.window
        mask = np.zeros(2 * k + 1, dtype=bool)
        free_slot = ~(pending.in_batch | pending.evict)
        if pending.count < sim.config.max_batch_size and pending.budget_left >= 1:
            mask[:k] = win.valid & free_slot & (tokens_fitting(sim, win, slice(None), pending.free_blocks) >= 1)
        mask[k:2 * k] = win.resident & free_slot
        mask[2 * k] = pending.count > 0 or not mask[:k].any()
        return mask

    def act(self, action, sim, win, pending):
        array = np.asarray(action)
        if array.shape not in ((), (1,)) or array.dtype.kind not in "iu":
            raise ValueError(f"sequential action must be one integer, got dtype {array.dtype} shape {array.shape}")
        choice = int(array.reshape(-1)[0])
        if not 0 <= choice <= self.launch:
            raise ValueError(f"sequential action must be in [0, {self.launch}], got {choice}")
        repairs = Repairs()
        mask = self.mask(sim, win, pending)
        if not mask[choice]:
            repairs.invalid = 1
            self._reject(f"sequential action {choice} is masked ({self._describe(choice, win)}); allowed: "
                         f"{np.flatnonzero(mask).tolist()}")
            choice = self.launch
        k = self.window
        if choice < k:
            chunk = min(int(win.need[choice]), pending.budget_left,
                        int(tokens_fitting(sim, win, choice, pending.free_blocks)))
            pending.added.append(choice)
            pending.tokens.append(chunk)
            pending.in_batch[choice] = True
            pending.budget_left -= chunk
            pending.free_blocks -= int(sim.config.blocks(win.kv[choice] + chunk) - win.kv_blocks[choice])
            return None, repairs
        if choice < 2 * k:
            pending.evict[choice - k] = True
            pending.free_blocks += int(win.kv_blocks[choice - k])
            return None, repairs
        evict_ids = win.ids[pending.evict]
        if pending.count == 0:
            return self._livelock(sim, evict_ids, repairs, allowed=not repairs.invalid), repairs
        return Decision(win.ids[pending.added], pending.tokens, evict_ids), repairs

    def _describe(self, choice: int, win: Window) -> str:
        k = self.window
        if choice == self.launch:
            return "launch of an empty batch while a request can be added"
        slot = choice % k
        what = "add" if choice < k else "evict"
        return f"{what} slot {slot} (request {int(win.ids[slot])})"

    def encode(self, decision, sim, win):
        evicts = (self._window_slots(win, decision.evict_ids, "evict") + self.window).tolist()
        adds = self._window_slots(win, decision.run_ids, "run").tolist()
        return self._verify(evicts + adds + [self.launch], decision, sim, win)


@njit(cache=True)
def _fitting(kv_blocks: int, kv: int, free_blocks: int, block_size: int) -> int:
    """The most tokens a request holding ``kv`` tokens in ``kv_blocks`` blocks could add with ``free_blocks`` blocks
    free (elementwise on arrays through ``py_func``, as :func:`tokens_fitting` does)."""
    return (kv_blocks + free_blocks) * block_size - kv


@njit(cache=True)
def _greedy_prefix(order: np.ndarray, num_order: int, need: np.ndarray, kv: np.ndarray, kv_blocks: np.ndarray,
                   block_size: int, budget: int, free_blocks: int, room: int) -> tuple[int, int, int, int]:
    """Take the first ``num_order`` slots of ``order`` with their full ``need`` while the budget, ``room`` batch
    places and memory allow; the first that does not fit is chunked to what remains when it can take a token.

    Returns (stop, chunk, tokens used, blocks used): ``stop`` is the position in ``order`` of the first slot not
    taken whole, ``chunk`` the tokens it takes (0: not taken); the totals count the whole runs only."""
    used_tokens = used_blocks = stop = 0
    limit = min(num_order, room)
    while stop < limit:
        slot = order[stop]
        tokens = used_tokens + need[slot]
        blocks = used_blocks + ceil_blocks(kv[slot] + need[slot], block_size) - kv_blocks[slot]
        if tokens > budget or blocks > free_blocks:
            break
        used_tokens, used_blocks = tokens, blocks
        stop += 1
    chunk = 0
    if stop < limit:
        slot = order[stop]
        fitting = _fitting(kv_blocks[slot], kv[slot], free_blocks - used_blocks, block_size)
        chunk = max(0, min(need[slot], budget - used_tokens, fitting))
    return stop, chunk, used_tokens, used_blocks


@njit(cache=True)
def _select_mask(count: int, num_resident: int, mask: np.ndarray) -> None:
    """Fill the (K, 3) select mask: leave is always allowed, run on filled slots, evict on resident ones.

    This and the batch kernels below fill arrays the caller allocates: returning an array from a kernel costs
    more than the work."""
    for slot in range(len(mask)):
        mask[slot, LEAVE] = True
        mask[slot, RUN] = slot < count
        mask[slot, EVICT] = slot < num_resident


@njit(cache=True)
def _select_batch(choice: np.ndarray, count: int, num_resident: int, ids: np.ndarray, need: np.ndarray,
                  kv: np.ndarray, kv_blocks: np.ndarray, decoding: np.ndarray, free_blocks: int, block_size: int,
                  budget: int, room: int, chosen: np.ndarray) -> tuple[int, int, int, int]:
    """The select mode's batch (see the module docstring): rows of ``chosen`` (3, K) get the run ids, their
    tokens and the evicted ids from column 0; returns (runs, evictions, masked choices ignored, runs dropped);
    masked choices is -1 when a value is not 0, 1 or 2."""
    size = len(choice)
    num_evict = invalid = 0
    for slot in range(size):
        if not 0 <= choice[slot] <= EVICT:
            return 0, 0, -1, 0
        if choice[slot] == EVICT:
            if slot < num_resident:
                chosen[2, num_evict] = ids[slot]
                num_evict += 1
                free_blocks += kv_blocks[slot]
            else:
                invalid += 1
        elif choice[slot] == RUN and slot >= count:
            invalid += 1
    order = np.empty(count, dtype=np.int64)  # runs: decodes first, slot order within each group
    num_order = 0
    for decodes in (True, False):
        for slot in range(count):
            if choice[slot] == RUN and decoding[slot] == decodes:
                order[num_order] = slot
                num_order += 1
    stop, chunk, _, _ = _greedy_prefix(order, num_order, need, kv, kv_blocks, block_size, budget, free_blocks, room)
    taken = stop + (chunk > 0)
    for j in range(taken):
        chosen[0, j] = ids[order[j]]
        chosen[1, j] = need[order[j]] if j < stop else chunk
    return taken, num_evict, invalid, num_order - taken


@njit(cache=True)
def _priority_batch(scores: np.ndarray, count: int, num_resident: int, ids: np.ndarray, need: np.ndarray,
                    kv: np.ndarray, kv_blocks: np.ndarray, free_blocks: int, block_size: int, budget: int,
                    room: int, chosen: np.ndarray) -> tuple[int, int, int, int]:
    """The priority mode's batch for the first ``count`` slots visited by decreasing score, ties in slot order,
    NaN scores last (see the module docstring): rows of ``chosen`` (3, K) get the run ids, their tokens and the
    evicted ids (in slot order) from column 0; returns (runs, evictions, NaN scores, -1), or (0, 0, 0, slot) for
    the first slot with an infinite score. From the first slot that does not fit whole on, lower-ranked resident
    slots are evicted (lowest first) to make room for higher-ranked ones."""
    keys = np.empty(count)
    num_nan = 0
    for slot in range(count):
        score = float(scores[slot])
        if np.isnan(score):
            num_nan += 1
            keys[slot] = np.inf
        elif np.isinf(score):
            return 0, 0, 0, slot
        else:
            keys[slot] = -score
    order = np.argsort(keys, kind="mergesort")  # stable
    num_order = count
    slots = np.empty(num_order, dtype=np.int64)
    tokens = chosen[1]
    evicted = np.zeros(len(ids), dtype=np.bool_)
    stop, _, used_tokens, used_blocks = _greedy_prefix(order, num_order, need, kv, kv_blocks, block_size, budget,
                                                       free_blocks, room)
    for j in range(stop):
        slots[j] = order[j]
        tokens[j] = need[order[j]]
    taken = stop
    budget_left = budget - used_tokens
    free = free_blocks - used_blocks
    for position in range(stop, num_order):
        if taken >= room or budget_left == 0:
            break
        slot = order[position]
        if evicted[slot]:
            continue
        want = min(need[slot], budget_left)
        if _fitting(kv_blocks[slot], kv[slot], free, block_size) < want:
            # Victims: resident slots ranked below this one, lowest first; evict the fewest that make room for
            # ``want`` tokens, else all of them if that makes room for at least one.
            gain = victims = 0
            enough = False
            for later in range(num_order - 1, position, -1):
                victim = order[later]
                if victim < num_resident and not evicted[victim]:
                    gain += kv_blocks[victim]
                    victims += 1
                    if _fitting(kv_blocks[slot], kv[slot], free + gain, block_size) >= want:
                        enough = True
                        break
            if not enough and _fitting(kv_blocks[slot], kv[slot], free + gain, block_size) < 1:
                victims = 0
            for later in range(num_order - 1, position, -1):
                victim = order[later]
                if victims == 0:
                    break
                if victim < num_resident and not evicted[victim]:
                    evicted[victim] = True
                    free += kv_blocks[victim]
                    victims -= 1
        chunk = min(want, _fitting(kv_blocks[slot], kv[slot], free, block_size))
        if chunk < 1:
            continue
        slots[taken] = slot
        tokens[taken] = chunk
        taken += 1
        budget_left -= chunk
        free -= ceil_blocks(kv[slot] + chunk, block_size) - kv_blocks[slot]
    for j in range(taken):
        chosen[0, j] = ids[slots[j]]
    num_evict = 0
    for slot in range(len(ids)):
        if evicted[slot]:
            chosen[2, num_evict] = ids[slot]
            num_evict += 1
    return taken, num_evict, num_nan, -1


ACTION_MODE_CLASSES: dict[str, type[ActionMode]] = {"select": SelectMode, "priority": PriorityMode,
                                                   "sequential": SequentialMode}


def make_action_mode(name: str, window: int, strict: bool) -> ActionMode:
    """The :class:`ActionMode` called ``name``."""
    if name not in ACTION_MODE_CLASSES:
        raise ValueError(f"action_mode must be one of {sorted(ACTION_MODE_CLASSES)}, got {name!r}")
    return ACTION_MODE_CLASSES[name](window, strict)
