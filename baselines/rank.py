"""Rank (sort) schedulers: one global priority order over every request, Sarathi-style chunked batches."""

from __future__ import annotations

from typing import ClassVar

from .builder import BatchBuilderScheduler, Eviction, Order
from .rules import (ArrivalOrder, FewestComputedEviction, NewestEviction, OutputLengthOrder, PromptLengthOrder,
                    PromptReservation, RemainingWorkOrder)

EVICTION_RULES: dict[str, type[Eviction]] = {"newest": NewestEviction, "srf": FewestComputedEviction}


class RankScheduler(BatchBuilderScheduler):
    """One global order over resident and waiting requests (no decode-first phase): the token budget
    ``min(C, chunk_size)`` is filled in that order (decodes take 1 token, prefills are chunked to what is
    left), a waiting request is admitted while its remaining prefill fits in free KV memory beside the
    unfinished prefills of resident ones (stop at the first that does not), and under memory pressure
    residents are evicted by ``eviction``: ``"newest"`` (vLLM) or ``"srf"`` (fewest computed tokens first,
    INFERMAX). Subclasses fix the order."""

    order_type: ClassVar[type[Order]]

    def __init_subclass__(cls, **kwargs) -> None:
        """Each concrete rank scheduler's docstring states its order, then the shared procedure."""
        super().__init_subclass__(**kwargs)
        cls.__doc__ = f"{cls.__doc__}\n\n{RankScheduler.__doc__}"

    def __init__(self, eviction: str = "newest", chunk_size: int | None = None) -> None:
        if eviction not in EVICTION_RULES:
            raise ValueError(f"{self.name}: eviction must be one of {sorted(EVICTION_RULES)}, got {eviction!r}")
        self.eviction_name = eviction
        super().__init__(order=self.order_type(), eviction=EVICTION_RULES[eviction](),
                         reservation=PromptReservation(), decodes_first=False, chunked=True, chunk_size=chunk_size)


class SortArrivalScheduler(RankScheduler):
    """Rank scheduler ordered by arrival (global FCFS)."""

    name = "sort_arrival"
    requires_oracle = False
    order_type = ArrivalOrder


class SortPromptScheduler(RankScheduler):
    """INFERMAX's sortI: rank scheduler ordered by prompt length, shortest first (ties by arrival)."""

    name = "sort_prompt"
    requires_oracle = False
    order_type = PromptLengthOrder


class SortOutputScheduler(RankScheduler):
    """INFERMAX's sortO: rank scheduler ordered by the true output length, shortest first (oracle)."""

    name = "sort_output"
    requires_oracle = True
    order_type = OutputLengthOrder


class SRPTScheduler(RankScheduler):
    """Shortest remaining processing time: rank scheduler ordered by tokens still to compute,
    I + O - 1 - KV (oracle), re-ranked every iteration."""

    name = "srpt"
    requires_oracle = True
    order_type = RemainingWorkOrder
