"""A random scheduler: the floor every policy should beat."""

from __future__ import annotations

import numpy as np

from infermax_env.simulator import Simulator

from .builder import BatchBuilderScheduler
from .rules import PromptReservation, RandomEviction, RandomOrder


class RandomScheduler(BatchBuilderScheduler):
    """Uniformly random feasible decisions, under the shared builder's constraints.

    Each iteration requests are taken in a uniformly random order (resident ones redrawn every iteration,
    waiting ones ranked by a random key drawn when they enter the queue), the token budget C is filled in that
    order, and every prefill chunk is then cut to a uniformly random size in 1..its share. A waiting request
    is admitted while its remaining prefill fits in free KV memory beside the unfinished prefills of resident
    ones; under memory pressure residents are evicted in uniformly random order (never the last one). At
    least one request runs each iteration, so every workload finishes. Seeded; ``reset`` reseeds.

    Args:
        seed: seed of the scheduler's own numpy Generators.
    """

    name = "random"
    requires_oracle = False

    def __init__(self, seed: int | None = 0) -> None:
        order_seed, eviction_seed, chunk_seed = np.random.SeedSequence(seed).spawn(3)
        self.seed = seed
        self._chunk_seed = chunk_seed
        self._rng = np.random.default_rng(chunk_seed)
        super().__init__(order=RandomOrder(order_seed), eviction=RandomEviction(eviction_seed),
                         reservation=PromptReservation(), decodes_first=False, chunked=True)

    def reset(self, sim: Simulator) -> None:
        super().reset(sim)
        self._rng = np.random.default_rng(self._chunk_seed)

    def adjust_tokens(self, sim: Simulator, ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        prefilling = (sim.need(ids) > 1) | (sim.generated[ids] == 0)
        return np.where(prefilling, self._rng.integers(1, tokens + 1), tokens)
