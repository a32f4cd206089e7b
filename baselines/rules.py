"""The orders, eviction rules and reservation rules the heuristic schedulers are assembled from.

Orders return keys (lower first); eviction rules return victim keys (lower evicted first); reservations
return the KV tokens a request is expected to need. See :mod:`baselines.builder` for how they are used.
"""

from __future__ import annotations

import numpy as np

from infermax_env.simulator import Simulator

from .builder import Eviction, Order, Reservation
from .predictor import log2_bucket
from .tracking import StepEvents


# ---- orders ------------------------------------------------------------------------------------
class ArrivalOrder(Order):
    """First come, first served: the earliest arrival first (an evicted request keeps its place)."""

    increasing_in_id = True

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return ids.astype(np.float64)


class PromptLengthOrder(Order):
    """Shortest prompt (I) first (INFERMAX's sortI)."""

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return sim.prompt_len[ids].astype(np.float64)


class OutputLengthOrder(Order):
    """Shortest output (O) first (INFERMAX's sortO); reads the true output length, so it is an oracle."""

    requires_oracle = True

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return sim.output_len[ids].astype(np.float64)


class RemainingWorkOrder(Order):
    """Shortest remaining processing time: fewest tokens still to compute, I + O - 1 - kv (oracle)."""

    requires_oracle = True

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return (sim.prompt_len[ids] + sim.output_len[ids] - 1 - sim.kv[ids]).astype(np.float64)


class MostComputedOrder(Order):
    """Shortest-Request-First in INFERMAX's sense: the request holding the most computed tokens first
    (waiting requests hold none, so they keep arrival order among themselves)."""

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return -sim.kv[ids].astype(np.float64)


class RandomOrder(Order):
    """A uniformly random order: fresh random keys for resident requests every iteration, one random key per
    waiting request when it enters the queue. Seeded; reseeded on reset."""

    def __init__(self, seed: int | np.random.SeedSequence | None = None):
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, sim: Simulator) -> None:
        self.rng = np.random.default_rng(self.seed)

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return self.rng.random(len(ids))


# ---- eviction rules ----------------------------------------------------------------------------
class NewestEviction(Eviction):
    """vLLM's rule: evict the most recently arrived resident request."""

    def victim_keys(self, sim: Simulator, ids: np.ndarray, priority_keys: np.ndarray) -> np.ndarray:
        return -ids.astype(np.float64)


class FewestComputedEviction(Eviction):
    """INFERMAX's SRF rule: evict the resident request with the fewest computed tokens (least KV lost)."""

    def victim_keys(self, sim: Simulator, ids: np.ndarray, priority_keys: np.ndarray) -> np.ndarray:
        return sim.kv[ids].astype(np.float64)


class LowestPriorityEviction(Eviction):
    """Evict the resident request the order ranks last."""

    def victim_keys(self, sim: Simulator, ids: np.ndarray, priority_keys: np.ndarray) -> np.ndarray:
        return -priority_keys


class RandomEviction(Eviction):
    """Evict resident requests in a uniformly random order. Seeded; reseeded on reset."""

    def __init__(self, seed: int | np.random.SeedSequence | None = None):
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, sim: Simulator) -> None:
        self.rng = np.random.default_rng(self.seed)

    def victim_keys(self, sim: Simulator, ids: np.ndarray, priority_keys: np.ndarray) -> np.ndarray:
        return self.rng.random(len(ids))


# ---- reservations ------------------------------------------------------------------------------
class PromptReservation(Reservation):
    """Reserve the remaining prefill only (I + generated tokens; vLLM allocates a prompt's blocks at
    admission); decodes grow on demand."""

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return np.zeros(len(ids), dtype=np.int64)


class OracleReservation(Reservation):
    """Reserve the full final KV, I + O - 1, at admission: with it a scheduler never needs to evict
    (INFERMAX's ``*_noe``). Reads the true output length (oracle)."""

    requires_oracle = True

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return sim.prompt_len[ids] + sim.output_len[ids] - 1


class CapReservation(Reservation):
    """Reserve I + max_tokens - 1 (at most M), the way engines with a ``max_tokens`` cap (Orca, static
    batching) size a request's KV. Never needs to evict while every output is at most ``max_tokens``."""

    def __init__(self, max_tokens: int = 2048):
        if not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.max_tokens = int(max_tokens)

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        return np.minimum(sim.prompt_len[ids] + self.max_tokens - 1, sim.config.kv_capacity)


class HistogramReservation(Reservation):
    """INFERMAX's reservation: max(I, mean final KV I + O - 1 of the finished requests whose prompt is in
    the same floor(log2 I) bucket); just I while the bucket has no finished request."""

    def __init__(self, num_buckets: int = 64):
        self.num_buckets = num_buckets
        self.total = np.zeros(num_buckets)
        self.count = np.zeros(num_buckets)

    def reset(self, sim: Simulator) -> None:
        self.total[:] = 0
        self.count[:] = 0

    def observe(self, sim: Simulator, events: StepEvents) -> None:
        done = events.finished
        if len(done):
            buckets = log2_bucket(sim.prompt_len[done], 1, self.num_buckets)
            np.add.at(self.total, buckets, sim.prompt_len[done] + sim.output_len[done] - 1)
            np.add.at(self.count, buckets, 1)

    def targets(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        buckets = log2_bucket(sim.prompt_len[ids], 1, self.num_buckets)
        count = self.count[buckets]
        mean = np.divide(self.total[buckets], count, out=np.zeros(len(ids)), where=count > 0)
        return np.maximum(np.ceil(mean).astype(np.int64), sim.prompt_len[ids])
