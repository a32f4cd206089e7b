"""The interface every cost model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..batch import Batch

BREAKDOWN_KEYS = ("linear", "attention", "lm_head", "communication", "overhead")


class CostModel(ABC):
    """Predicts the GPU time of one iteration.

    ``breakdown`` returns seconds per component under :data:`BREAKDOWN_KEYS` (``linear``: every
    non-attention op of the transformer layers; ``attention``; ``lm_head``; ``communication``:
    tensor-parallel all-reduces; ``overhead``: fixed per-iteration cost), summing to ``batch_time``.
    An empty batch costs 0.
    """

    @abstractmethod
    def breakdown(self, batch: Batch) -> dict[str, float]:
        """Seconds spent per component for ``batch``."""

    def batch_time(self, batch: Batch) -> float:
        """Predicted seconds for ``batch``."""
        return float(sum(self.breakdown(batch).values()))

    def price(self, batch: Batch) -> tuple[float, dict[str, float]]:
        """``(batch_time(batch), breakdown(batch))``, computing the batch's terms once (a subclass that overrides
        ``batch_time`` overrides this too)."""
        breakdown = self.breakdown(batch)
        return float(sum(breakdown.values())), breakdown
