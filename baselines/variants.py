"""No-eviction counterparts of the preempting schedulers (INFERMAX's ``*_noe``) and max-tokens-cap ones."""

from __future__ import annotations

from .builder import BatchBuilderScheduler
from .rules import CapReservation, OracleReservation


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


def capped_no_eviction(base: type[BatchBuilderScheduler]) -> type[BatchBuilderScheduler]:
    """``base`` with its reservation replaced by I + max_tokens - 1 (at most M) at admission: no eviction
    while every output is at most ``max_tokens`` (a longer one falls back to ``base``'s eviction rule)."""

    class Capped(base):  # type: ignore[valid-type, misc]
        requires_oracle = False

        def __init__(self, max_tokens: int = 2048, **kwargs) -> None:
            super().__init__(**kwargs)
            self.reservation = CapReservation(max_tokens)

    Capped.name = f"{base.name}_cap"
    Capped.__name__ = Capped.__qualname__ = base.__name__.replace("Scheduler", "CapScheduler")
    Capped.__doc__ = (f"``{base.name}`` with a max-tokens cap: a waiting request is admitted only if "
                      f"I + max_tokens - 1 KV tokens (at most M) fit beside the reservations of the resident "
                      f"requests, so nothing is evicted while outputs stay within ``max_tokens`` (default 2048); "
                      f"a longer output falls back to ``{base.name}``'s eviction. Otherwise as "
                      f"``{base.name}``:\n\n{base.__doc__}")
    return Capped
