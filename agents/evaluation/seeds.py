"""Seeds of held-out evaluation instances and of training resets, disjoint by construction.

Evaluation instance ``i`` is drawn with seed ``EVAL_SEED_OFFSET + i`` (10,000,000 + i). Training resets draw
their seeds from :func:`training_seeds`, a ``numpy.random.SeedSequence`` stream mapped into
``[0, EVAL_SEED_OFFSET)``, so no training instance is an evaluation instance (:class:`TrainingSeedWrapper`
applies it to a training env).
"""

from __future__ import annotations

from typing import Any, Iterator

import gymnasium as gym
import numpy as np

EVAL_SEED_OFFSET = 10_000_000
"""Evaluation instance ``i`` uses seed ``EVAL_SEED_OFFSET + i``; training seeds stay below it."""

def evaluation_seeds(num_instances: int, offset: int = EVAL_SEED_OFFSET) -> list[int]:
    """Seeds of the held-out evaluation instances: ``offset, offset + 1, ...``."""
    if num_instances < 1:
        raise ValueError(f"num_instances must be >= 1, got {num_instances}")
    if offset < EVAL_SEED_OFFSET:
        raise ValueError(f"evaluation seeds must start at or above {EVAL_SEED_OFFSET} (disjoint from training), "
                         f"got offset {offset}")
    return [offset + i for i in range(num_instances)]


def training_seeds(seed: int) -> Iterator[int]:
    """An endless stream of training instance seeds in ``[0, EVAL_SEED_OFFSET)``, reproducible from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    while True:
        yield from rng.integers(0, EVAL_SEED_OFFSET, size=1024).tolist()


class TrainingSeedWrapper(gym.Wrapper):
    """Resets the wrapped env with seeds from :func:`training_seeds` so training never sees an evaluation
    instance. An explicit ``reset(seed=...)`` still wins (it must be below ``EVAL_SEED_OFFSET``)."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._seeds = training_seeds(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and seed >= EVAL_SEED_OFFSET:
            raise ValueError(f"training seed {seed} collides with the evaluation range (>= {EVAL_SEED_OFFSET})")
        return self.env.reset(seed=next(self._seeds) if seed is None else seed, options=options)
