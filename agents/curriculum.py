"""A curriculum over InferMax-v0 windows: short windows first, then the full 256-request windows, at loads
drawn between 0.5x and 1.5x the trace rate.

Window length grows geometrically with training progress (``32 -> 64 -> 128 -> 256`` over the first
``ramp_fraction`` of training, then stays at the maximum); every window is drawn with a training seed (below
the evaluation range), so no evaluation or validation window is ever trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

from infermax_env.envs.config import conv_workload_generator
from infermax_env.workload import Workload


@dataclass(frozen=True)
class Curriculum:
    """Which window to train on at a given progress (0 = start, 1 = end of training).

    Attributes:
        min_requests, max_requests: window length at the start and after the ramp (powers of two apart).
        min_rate, max_rate: the arrival-rate multiplier is drawn uniformly from this range.
        ramp_fraction: share of training over which the length grows.
    """

    min_requests: int = 32
    max_requests: int = 256
    min_rate: float = 0.5
    max_rate: float = 1.5
    ramp_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.min_requests <= self.max_requests:
            raise ValueError(f"need 1 <= min_requests <= max_requests, got {self.min_requests}, {self.max_requests}")
        if not 0 < self.min_rate <= self.max_rate:
            raise ValueError(f"need 0 < min_rate <= max_rate, got {self.min_rate}, {self.max_rate}")
        if not 0 < self.ramp_fraction <= 1:
            raise ValueError(f"ramp_fraction must be in (0, 1], got {self.ramp_fraction}")

    def num_requests(self, progress: float) -> int:
        """Window length at ``progress``: a power-of-two step from ``min_requests`` to ``max_requests``."""
        stages = math.log2(self.max_requests / self.min_requests)
        stage = math.floor(min(max(progress, 0.0) / self.ramp_fraction, 1.0) * stages + 1e-9)
        return min(int(self.min_requests * 2 ** stage), self.max_requests)

    def draw(self, progress: float, seed: int) -> Workload:
        """The window for ``progress`` drawn from training seed ``seed`` (length, rate and trace position)."""
        from agents.evaluation import EVAL_SEED_OFFSET

        if not 0 <= seed < EVAL_SEED_OFFSET:
            raise ValueError(f"training seed {seed} must be in [0, {EVAL_SEED_OFFSET}) (disjoint from evaluation)")
        rng = np.random.default_rng(seed)
        rate = float(rng.uniform(self.min_rate, self.max_rate))
        generator, _ = conv_workload_generator(self.num_requests(progress), rate)
        return generator(rng)

