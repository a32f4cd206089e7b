"""INFERMAX's per-layer linear cost model (Kim et al., arXiv 2411.07447).

Per transformer layer, in milliseconds, with N the tokens in the batch:

* non-attention: ``a_o * N + b_o``
* decode attention: ``(a_d * sum(context) + b_d) * (1.1 if >1 decode else 1) + s_d * n_decodes``
* prefill attention: ``(a_p * sum(c^2 + 2 c m) + b_p) * (1.1 if >1 prefill else 1) + s_p * n_prefills
  + m_p * sum(m)`` for chunks of ``c`` new tokens over ``m`` cached ones.

A term whose kind of request is absent is zero. Batch time = layers x per-layer time. The default
coefficients are the paper's Llama-3-70B, TP 4 (A100 80GB) fit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterable, Sequence

import numpy as np
from numba import njit

from ..batch import Batch
from .base import CostModel

MULTI_KERNEL_FACTOR = 1.1


@dataclass(frozen=True)
class LinearCoefficients:
    """Per-layer milliseconds coefficients of :class:`LinearCostModel`."""

    a_o: float = 0.002
    b_o: float = 0.159
    a_d: float = 1.222e-6
    b_d: float = 0.081
    s_d: float = 3.92e-4
    a_p: float = 4.309e-8
    b_p: float = 0.2112
    s_p: float = 9.03e-4
    m_p: float = 3.805e-7


LLAMA3_70B_TP4 = LinearCoefficients()


class LinearCostModel(CostModel):
    """INFERMAX's linear model; exact (integer-friendly) and cheap, the one the CP-SAT optimum encodes."""

    def __init__(self, coefficients: LinearCoefficients = LLAMA3_70B_TP4, num_layers: int = 80):
        self.coefficients = coefficients
        self.num_layers = num_layers
        self._coefficient_array = np.zeros(0)
        self._array_of: LinearCoefficients | None = None  # the coefficients _coefficient_array holds

    @staticmethod
    def features(batch: Batch) -> np.ndarray:
        """The 9 regressors whose dot product with the coefficients (a_o, b_o, a_d, b_d, s_d, a_p, b_p, s_p,
        m_p) gives the per-layer milliseconds."""
        n_dec, n_pre = batch.num_decodes, batch.num_prefills
        c = batch.prefill_new
        m = batch.prefill_cached
        dec_mult = (MULTI_KERNEL_FACTOR if n_dec > 1 else 1.0) if n_dec else 0.0
        pre_mult = (MULTI_KERNEL_FACTOR if n_pre > 1 else 1.0) if n_pre else 0.0
        n_tokens = int(c.sum()) + n_dec
        return np.array([
            n_tokens, 1.0 if n_tokens else 0.0,
            dec_mult * float(batch.decode_context.sum()), dec_mult, n_dec,
            pre_mult * float((c * (c + 2 * m)).sum()), pre_mult, n_pre, float(m.sum()),
        ])

    def _terms_ms(self, batch: Batch) -> tuple[float, float]:
        """(non-attention, attention) per-layer milliseconds of ``batch``."""
        if self.coefficients is not self._array_of:
            self._coefficient_array = np.array([getattr(self.coefficients, f.name) for f in fields(LinearCoefficients)])
            self._array_of = self.coefficients
        return _linear_terms_ms(batch.prefill_new, batch.prefill_cached, batch.decode_context, self._coefficient_array)

    def _breakdown(self, linear: float, attention: float) -> dict[str, float]:
        scale = self.num_layers * 1e-3
        return {"linear": linear * scale, "attention": attention * scale, "lm_head": 0.0,
                "communication": 0.0, "overhead": 0.0}

    def breakdown(self, batch: Batch) -> dict[str, float]:
        return self._breakdown(*self._terms_ms(batch))

    def batch_time(self, batch: Batch) -> float:
        linear, attention = self._terms_ms(batch)
        return (linear + attention) * self.num_layers * 1e-3

    def price(self, batch: Batch) -> tuple[float, dict[str, float]]:
        linear, attention = self._terms_ms(batch)
        return (linear + attention) * self.num_layers * 1e-3, self._breakdown(linear, attention)

    @classmethod
    def fit(cls, batches: Sequence[Batch], times: Iterable[float], num_layers: int = 80) -> "LinearCostModel":
        """Least-squares fit of all nine coefficients to measured batch times in seconds.

        Coefficients a term never exercises (e.g. no multi-decode batches) keep the paper's value; pass
        batches that cover decodes, prefills and mixtures for a full fit.
        """
        times = np.asarray(list(times), dtype=float)
        if len(batches) != len(times):
            raise ValueError(f"fit got {len(batches)} batches but {len(times)} times")
        if len(times) == 0:
            raise ValueError("fit needs at least one (batch, time) pair")
        x = np.stack([cls.features(b) for b in batches])
        y = times * 1e3 / num_layers
        used = np.flatnonzero(np.abs(x).sum(axis=0) > 0)
        solution, *_ = np.linalg.lstsq(x[:, used], y, rcond=None)
        names = [f.name for f in fields(LinearCoefficients)]
        coefficients = replace(LLAMA3_70B_TP4, **{names[i]: float(v) for i, v in zip(used, solution)})
        return cls(coefficients, num_layers)


@njit(cache=True)
def _linear_terms_ms(prefill_new: np.ndarray, prefill_cached: np.ndarray, decode_context: np.ndarray,
                     coefficients: np.ndarray) -> tuple[float, float]:
    """(non-attention, attention) per-layer milliseconds for prefill chunks of ``c`` new tokens over ``m`` cached
    ones and decodes of the given contexts; ``coefficients`` in LinearCoefficients' field order. The arithmetic of
    ``features`` written out on scalars: this runs once per simulated iteration."""
    a_o, b_o, a_d, b_d, s_d, a_p, b_p, s_p, m_p = coefficients
    n_dec = len(decode_context)
    n_pre = len(prefill_new)
    n_tokens = n_dec
    prefill_sum = cached_sum = 0
    for j in range(n_pre):
        c, m = prefill_new[j], prefill_cached[j]
        n_tokens += c
        prefill_sum += c * (c + 2 * m)
        cached_sum += m
    attention = 0.0
    if n_dec:
        mult = MULTI_KERNEL_FACTOR if n_dec > 1 else 1.0
        attention += (a_d * decode_context.sum() + b_d) * mult + s_d * n_dec
    if n_pre:
        mult = MULTI_KERNEL_FACTOR if n_pre > 1 else 1.0
        attention += (a_p * prefill_sum + b_p) * mult + s_p * n_pre + m_p * cached_sum
    linear = a_o * n_tokens + b_o if n_tokens else 0.0
    return linear, attention
