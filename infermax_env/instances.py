"""Named problem settings shared by the envs, the optimal solver and the evaluation code.

``tiny``: small offline instances (4-12 requests, short prompts and outputs, tight KV) where preemption
matters and the CP-SAT optimum is computable. ``infermax``: the INFERMAX paper's setting (Llama-3-70B,
TP 4 on A100 80GB, linear cost model, M = 100,000, C = 16,384); :func:`infermax_offline_setting` its
v1/v2 offline batches (see :mod:`infermax_env.offline` for those and the trace preprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cost.linear import LinearCostModel
from .deployment import EngineConfig
from .offline import OfflineBatch
from .workload import SyntheticGenerator, Uniform, Workload, WorkloadGenerator


@dataclass(frozen=True)
class ProblemSetting:
    """A workload generator plus the engine limits and cost model instances are served under."""

    name: str
    generator: WorkloadGenerator
    engine: EngineConfig
    cost_model: LinearCostModel = field(default_factory=LinearCostModel)

    def sample(self, seed: int | np.random.Generator) -> Workload:
        """One instance, reproducible from ``seed``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.generator(rng)


TINY_ENGINE = EngineConfig(kv_capacity=48, token_budget=32, max_batch_size=8, block_size=1)


def tiny_generator(num_requests: int | tuple[int, int] = (4, 12)) -> SyntheticGenerator:
    """Offline instances: prompts of 2-16 tokens, outputs of 1-8 tokens."""
    return SyntheticGenerator(num_requests=num_requests, prompt=Uniform(2, 16), output=Uniform(1, 8),
                              arrival="offline", name="tiny")


def tiny_setting(num_requests: int | tuple[int, int] = (4, 12)) -> ProblemSetting:
    return ProblemSetting("tiny", tiny_generator(num_requests), TINY_ENGINE)


INFERMAX_ENGINE = EngineConfig(kv_capacity=100_000, token_budget=16_384)


def infermax_offline_setting(prompt: int = 128, output: int = 512, count: int = 1024,
                             kv_capacity: int = 4096) -> ProblemSetting:
    """INFERMAX v1/v2's offline batch: ``count`` requests of prompt ``prompt`` and output ``output`` at time 0,
    KV capacity ``kv_capacity``, C = 16,384, batch size unbounded."""
    return ProblemSetting("infermax-offline", OfflineBatch.uniform(prompt, output, count),
                          EngineConfig(kv_capacity=kv_capacity, token_budget=INFERMAX_ENGINE.token_budget))
