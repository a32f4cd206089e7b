"""No-eviction counterparts of the preempting schedulers: INFERMAX's ``*_noe`` (reserve the true I + O - 1) and
the fixed max-length reservation real servers without preemption use (``*_cap``)."""

from __future__ import annotations

import numpy as np

from infermax_env.simulator import Decision, Simulator

from .builder import BatchBuilderScheduler, Reservation
from .rules import OracleReservation


def oracle_no_eviction(base: type[BatchBuilderScheduler]) -> type[BatchBuilderScheduler]:
    """``base`` with its reservation replaced by the full final KV I + O - 1 at admission (oracle): requests
    are admitted only when their whole lifetime's KV fits beside that of the resident ones, so memory never
    runs out and nothing is ever evicted."""

    class NoEviction(base):  # type: ignore[valid-type, misc]
        requires_oracle = True

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.reservation = OracleReservation()

    NoEviction.name = f"{base.name}_noe"
    NoEviction.__name__ = NoEviction.__qualname__ = base.__name__.replace("Scheduler", "NoEvictionScheduler")
    NoEviction.__doc__ = (f"``{base.name}`` that never evicts: a waiting request is admitted only if its final "
                          f"KV, I + O - 1 tokens (the true output length: oracle), fits beside the final KV of "
                          f"every resident request. Otherwise as ``{base.name}``:\n\n{base.__doc__}")
    return NoEviction


DEFAULT_MAX_TOKENS = 2048


class ReservationExceededError(RuntimeError):
    """A request of a fixed-reservation scheduler outgrew its reservation (its output is longer than the cap),
    so serving it would need an eviction the scheduler promises never to make."""


class MaxLengthReservation(Reservation):
    """Reserve a fixed maximum per request without reading its output length: I + ``max_tokens`` - 1 (a
    server's per-request ``max_tokens``) or, with ``max_model_len``, that many tokens whatever the prompt (a
    maximum sequence length, as Vidur's Orca reserves). Either is capped at M, so it always fits in an empty
    cache. Exactly one of the two is given."""

    def __init__(self, max_tokens: int | None = 2048, max_model_len: int | None = None):
        if (max_tokens is None) == (max_model_len is None):
            raise ValueError(f"give exactly one of max_tokens and max_model_len, got max_tokens={max_tokens!r}, "
                             f"max_model_len={max_model_len!r}")
        for label, value in (("max_tokens", max_tokens), ("max_model_len", max_model_len)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.max_model_len = None if max_model_len is None else int(max_model_len)

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        if self.max_model_len is not None:
            target = np.full(len(ids), self.max_model_len, dtype=np.int64)
        else:
            target = sim.prompt_len[ids] + self.max_tokens - 1
        return np.minimum(target, sim.config.kv_capacity)

    def describe(self) -> str:
        if self.max_model_len is not None:
            return f"max_model_len={self.max_model_len}"
        return f"max_tokens={self.max_tokens}"


def capped_no_eviction(base: type[BatchBuilderScheduler]) -> type[BatchBuilderScheduler]:
    """``base`` with its reservation replaced by a fixed maximum length (:class:`MaxLengthReservation`) and
    eviction forbidden: no request is ever evicted. When a request has outgrown its reservation (an output
    longer than the cap) and memory runs out, the run stops with :class:`ReservationExceededError` instead; a
    prompt longer than ``max_model_len`` is refused at reset."""

    class Capped(base):  # type: ignore[valid-type, misc]
        requires_oracle = False

        def __init__(self, max_tokens: int | None = None, max_model_len: int | None = None, **kwargs) -> None:
            super().__init__(**kwargs)
            if max_tokens is None and max_model_len is None:
                max_tokens = DEFAULT_MAX_TOKENS
            self.reservation = MaxLengthReservation(max_tokens, max_model_len)

        def reset(self, sim: Simulator) -> None:
            cap = self.reservation.max_model_len
            if cap is not None:
                longer = np.flatnonzero(sim.prompt_len > cap)
                if len(longer):
                    r = int(longer[0])
                    raise ReservationExceededError(
                        f"{self.name}: request {r} has a prompt of {int(sim.prompt_len[r])} tokens, longer than "
                        f"max_model_len={cap} ({len(longer)} such requests); a server would reject it: raise "
                        f"max_model_len or cap the workload (infermax_env.offline.cap_total_length)")
            super().reset(sim)

        def decide(self, sim: Simulator) -> Decision:
            decision = super().decide(sim)
            if len(decision.evict_ids):
                ids = sim.resident_ids()
                reserved = np.maximum(self.reservation.targets(sim, ids), sim.prompt_len[ids])
                over = ids[sim.prompt_len[ids] + sim.generated[ids] > reserved]
                r = int(over[0]) if len(over) else int(decision.evict_ids[0])
                raise ReservationExceededError(
                    f"{self.name} ({self.reservation.describe()}): request {r} (prompt {int(sim.prompt_len[r])}, "
                    f"{int(sim.generated[r])} tokens generated) outgrew its reservation, so serving it would need an "
                    f"eviction; a server would stop it at the cap: cap the workload's lengths "
                    f"(infermax_env.offline.cap_total_length) or raise the cap")
            return decision

    Capped.name = f"{base.name}_cap"
    Capped.__name__ = Capped.__qualname__ = base.__name__.replace("Scheduler", "CapScheduler")
    Capped.__doc__ = (f"``{base.name}`` with a fixed max-length reservation and no eviction, as servers "
                      f"without preemption run: a waiting request is admitted only if its reservation, "
                      f"I + max_tokens - 1 tokens (default max_tokens 2048) or ``max_model_len`` tokens whatever "
                      f"the prompt (each at most M), fits beside the reservations of the resident requests. It "
                      f"never evicts: if a request outgrows its reservation and memory runs out, it raises "
                      f"ReservationExceededError. "
                      f"Otherwise as ``{base.name}``:\n\n{base.__doc__}")
    return Capped


def chunked_preset(base: type[BatchBuilderScheduler], chunk_size: int, name: str) -> type[BatchBuilderScheduler]:
    """``base`` (a scheduler taking ``chunk_size``) registered under ``name`` with ``chunk_size`` as its default."""

    class Preset(base):  # type: ignore[valid-type, misc]
        def __init__(self, chunk_size: int | None = chunk_size, **kwargs) -> None:
            super().__init__(chunk_size=chunk_size, **kwargs)

    Preset.name = name
    Preset.__name__ = Preset.__qualname__ = base.__name__.replace("Scheduler", f"Chunk{chunk_size}Scheduler")
    Preset.__doc__ = (f"``{base.name}`` with a {chunk_size}-token chunk by default (INFERMAX's plain "
                      f"``{base.name}``; the unsuffixed one uses C):\n\n{base.__doc__}")
    return Preset
