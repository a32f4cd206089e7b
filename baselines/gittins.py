"""SageSched's hybrid service cost and the Gittins index over a histogram of it.

The service cost of a request with prompt I and output O counts compute and memory, each as a fraction of
one iteration's capacity: ``(I + O) / C`` (tokens over the token budget) plus ``(I*O + O(O+1)/2) / M``
(KV token-iterations held, sum_{t=1..O} (I + t), over the KV capacity).

For a request with remaining cost R (a histogram with support r_1 < r_2 < ... and probabilities p_k), the
Gittins index is ``sup_{d>0} P(R <= d) / E[min(R, d)]``; the supremum is reached at a support point, so with
``F_k = p_1 + ... + p_k`` it is ``max_k F_k / (sum_{j<=k} p_j r_j + r_k (1 - F_k))``. Serving the highest
index first minimises mean completion time when only the size distribution is known.
"""

from __future__ import annotations

import numpy as np

from .predictor import OutputDistribution


def hybrid_cost(prompt_len: np.ndarray, output_len: np.ndarray, token_budget: int, kv_capacity: int) -> np.ndarray:
    """Compute plus memory cost of serving ``output_len`` tokens after a prompt of ``prompt_len``."""
    prompt_len = np.asarray(prompt_len, dtype=np.float64)
    output_len = np.asarray(output_len, dtype=np.float64)
    compute = (prompt_len + output_len) / token_budget
    memory = (prompt_len * output_len + output_len * (output_len + 1) / 2) / kv_capacity
    return compute + memory


def gittins_index(distribution: OutputDistribution, prompt_len: np.ndarray, generated: np.ndarray,
                  token_budget: int, kv_capacity: int) -> np.ndarray:
    """Gittins index of each request's remaining hybrid cost.

    ``distribution`` holds each request's output length given O > generated (bin midpoints are the support);
    the attained cost is ``hybrid_cost(I, generated)`` once the first token is out and 0 before.
    """
    prompt = np.asarray(prompt_len, dtype=np.float64)[:, None]
    generated = np.asarray(generated, dtype=np.float64)
    attained = np.where(generated > 0, hybrid_cost(prompt[:, 0], generated, token_budget, kv_capacity), 0.0)
    probs = distribution.probs
    remaining = hybrid_cost(prompt, distribution.midpoints(), token_budget, kv_capacity) - attained[:, None]
    support = probs > 0
    remaining = np.where(support, remaining, 0.0)
    cdf = np.cumsum(probs, axis=1)
    expected = np.cumsum(probs * remaining, axis=1) + remaining * (1.0 - cdf)
    ratio = np.where(support, cdf / np.where(support, expected, 1.0), -np.inf)
    return ratio.max(axis=1)
