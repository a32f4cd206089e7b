"""The K request slots the agent sees and acts on, refreshed from the simulator each iteration.

Slot order (stable, documented): resident requests (those holding KV) in arrival order, then waiting requests
in arrival order, truncated to K; empty slots are padded with id -1. A request keeps its relative order as
long as it stays resident or waiting, and arrival order is request-id order (workloads are sorted by arrival).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .. import layout
from ..simulator import Simulator

# Rows of Window.slots (int64) and Window.slot_flags (bool).
SLOT_ROWS = ("ids", "kv", "need", "generated")
SLOT_FLAG_ROWS = ("decoding", "valid", "resident")
SLOT_ID, SLOT_KV, SLOT_NEED, SLOT_GENERATED = range(len(SLOT_ROWS))
SLOT_DECODING, SLOT_VALID, SLOT_RESIDENT = range(len(SLOT_FLAG_ROWS))


class Window:
    """The K requests the agent sees and acts on this iteration, with what the action modes need.

    One Window per env, refreshed in place each iteration (its arrays are internal buffers; the observation
    never aliases them). Arrays have length K; entries past ``count`` are padding (id -1, zeros). Slots
    ``0..num_resident-1`` hold resident requests. ``ids``, ``kv``, ``need``, ``generated`` are the rows of
    ``slots`` and ``decoding``, ``valid``, ``resident`` those of ``slot_flags``.
    """

    __slots__ = ("size", "slots", "slot_flags", "ids", "kv", "need", "generated", "decoding", "valid", "resident",
                 "kv_blocks", "count", "num_resident", "free_blocks", "num_waiting_total", "num_resident_total")

    def __init__(self, size: int):
        self.size = size
        self.slots = np.zeros((4, size), dtype=np.int64)
        self.slot_flags = np.zeros((3, size), dtype=bool)
        self.slots[SLOT_ID] = -1
        self._bind_rows()
        self.count = self.num_resident = self.free_blocks = self.num_waiting_total = self.num_resident_total = 0

    def _bind_rows(self) -> None:
        self.ids, self.kv, self.need, self.generated = self.slots
        self.decoding, self.valid, self.resident = self.slot_flags
        self.kv_blocks = self.kv

    def __getstate__(self) -> dict[str, Any]:
        """The state without the row views (``copy.deepcopy`` and ``pickle`` rebuild them from the packed arrays)."""
        views = set(SLOT_ROWS + SLOT_FLAG_ROWS)
        state = {name: getattr(self, name) for name in self.__slots__ if name not in views}
        if self.kv_blocks is self.kv:  # block size 1: kv_blocks is the kv row too
            del state["kv_blocks"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        kv_blocks = state.get("kv_blocks")
        self._bind_rows()
        if kv_blocks is not None:
            self.kv_blocks = kv_blocks

    def refresh(self, sim: Simulator) -> "Window":
        """Fill the slots from ``sim``'s current state (see the module docstring for the order)."""
        num_waiting, num_resident_total = len(sim.waiting), len(sim.resident)
        self.count, self.num_resident = _fill_slots(sim.counts, sim.closed, sim.num_arrived, num_resident_total,
                                                    num_waiting, self.slots, self.slot_flags)
        cfg = sim.config
        self.kv_blocks = self.kv if cfg.block_size == 1 else cfg.blocks(self.kv)
        self.free_blocks = cfg.num_blocks - sim.kv_blocks_used
        self.num_waiting_total = num_waiting
        self.num_resident_total = num_resident_total
        return self

    @property
    def num_beyond(self) -> int:
        return self.num_waiting_total + self.num_resident_total - self.count


@njit(cache=True)
def _fill_slots(counts: np.ndarray, closed: np.ndarray, num_arrived: int, num_resident: int, num_waiting: int,
                slots: np.ndarray, slot_flags: np.ndarray) -> tuple[int, int]:
    """Fill the window's packed slot arrays with the first resident requests by id, then the first waiting
    ones, padding the rest (id -1, zeros, not valid); returns (filled slots, resident slots). Resident requests
    are the arrived ones holding KV, waiting ones the arrived unfinished ones holding none; ids are in arrival
    order. ``counts`` and ``closed`` are the simulator's."""
    kv, generated, prompt_len = counts[layout.KV], counts[layout.GENERATED], counts[layout.PROMPT_LEN]
    ids = slots[SLOT_ID]
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
        slot_flags[SLOT_VALID, slot] = slot < count
        slot_flags[SLOT_RESIDENT, slot] = slot < slots_resident
        if slot < count:
            r = ids[slot]
            need = prompt_len[r] + generated[r] - kv[r]
            slots[SLOT_KV, slot] = kv[r]
            slots[SLOT_GENERATED, slot] = generated[r]
            slots[SLOT_NEED, slot] = need
            slot_flags[SLOT_DECODING, slot] = generated[r] > 0 and need == 1
        else:
            ids[slot] = -1
            slots[SLOT_KV, slot] = slots[SLOT_GENERATED, slot] = slots[SLOT_NEED, slot] = 0
            slot_flags[SLOT_DECODING, slot] = False
    return count, slots_resident
