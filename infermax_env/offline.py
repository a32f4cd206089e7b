"""INFERMAX's experimental settings: offline synthetic batches and the trace preprocessing.

The v1/v2 experiments of INFERMAX ran offline batches of B identical requests (prompt I, output O, all at
time 0) swept over the KV capacity M; :class:`OfflineBatch` draws such batches, and mixtures of several
(I, O, B) groups. Their Azure-trace runs capped each request's I + O at 4,096 tokens, shuffled the lengths
relative to the arrivals (seed 42) and dropped the first request: :func:`cap_total_length` and
:func:`infermax_trace` do the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WorkloadError
from .workload import Workload, load_azure_trace

INFERMAX_MAX_TOTAL = 4096
"""The I + O cap of INFERMAX's trace loader."""
INFERMAX_SHUFFLE_SEED = 42
"""The seed INFERMAX's trace loader shuffles lengths with."""


@dataclass(frozen=True)
class OfflineBatch:
    """Offline batches: ``count`` requests of prompt ``prompt`` and output ``output`` per group, all arriving at
    time 0.

    Args:
        groups: ``(prompt, output, count)`` triples; one triple is INFERMAX's (I, O, B) batch, several a
            mixture.
        shuffle: draw the order of a mixture's requests from the generator's ``rng`` (request ids break ties
            between requests arriving together, so the order is the admission order of FCFS schedulers);
            otherwise groups follow one another in the given order.
        name: a label for reports (default ``offline-I{prompt}-O{output}-B{count}`` joined by ``+``).
    """

    groups: tuple[tuple[int, int, int], ...]
    shuffle: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        groups = tuple(tuple(group) for group in self.groups)
        if not groups:
            raise WorkloadError("OfflineBatch needs at least one (prompt, output, count) group")
        for group in groups:
            if len(group) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                          for v in group):
                raise WorkloadError(f"OfflineBatch group {group!r} must be (prompt, output, count), positive integers")
        object.__setattr__(self, "groups", tuple(tuple(int(v) for v in group) for group in groups))
        if not self.name:
            object.__setattr__(self, "name", "+".join(f"offline-I{i}-O{o}-B{b}" for i, o, b in self.groups))

    @classmethod
    def uniform(cls, prompt: int, output: int, count: int) -> "OfflineBatch":
        """INFERMAX's batch: ``count`` identical requests of prompt ``prompt`` and output ``output``."""
        return cls(((prompt, output, count),))

    @property
    def num_requests(self) -> int:
        return sum(count for _, _, count in self.groups)

    def __call__(self, rng: np.random.Generator) -> Workload:
        prompt = np.concatenate([np.full(count, i, dtype=np.int64) for i, _, count in self.groups])
        output = np.concatenate([np.full(count, o, dtype=np.int64) for _, o, count in self.groups])
        if self.shuffle and len(self.groups) > 1:
            order = rng.permutation(len(prompt))
            prompt, output = prompt[order], output[order]
        return Workload(np.zeros(len(prompt)), prompt, output, name=self.name)


def cap_total_length(workload: Workload, max_total: int = INFERMAX_MAX_TOTAL) -> Workload:
    """``workload`` with each request's I + O cut to at most ``max_total`` tokens, the excess taken from the
    prompt and the output in proportion to their lengths (rounded up; each keeps at least 1 token)."""
    if isinstance(max_total, bool) or not isinstance(max_total, (int, np.integer)) or max_total < 2:
        raise WorkloadError(f"max_total must be an integer >= 2 (a prompt and an output token), got {max_total!r}")
    prompt, output = workload.prompt_len, workload.output_len
    total = prompt + output
    excess = np.maximum(total - max_total, 0)
    cut_prompt = np.ceil(excess * prompt / total).astype(np.int64)
    new_prompt = np.maximum(prompt - cut_prompt, 1)
    new_output = np.maximum(np.minimum(output, max_total - new_prompt), 1)
    out = workload.subset(slice(None))
    out.prompt_len, out.output_len = new_prompt, new_output
    return out


def infermax_trace(kind: str = "conv", directory: str | Path | None = None, max_total: int | None = INFERMAX_MAX_TOTAL,
                   shuffle_seed: int | None = INFERMAX_SHUFFLE_SEED, drop_first: bool = True) -> Workload:
    """An Azure 2023 trace preprocessed as INFERMAX's loader does: the first request dropped (``drop_first``),
    the (prompt, output) pairs permuted relative to the arrival times with ``shuffle_seed`` (None keeps them),
    and I + O capped at ``max_total`` (None: no cap) by :func:`cap_total_length`."""
    trace = load_azure_trace(kind, directory)
    if drop_first:
        trace = trace.subset(slice(1, None))
        trace.arrival = trace.arrival - trace.arrival[0]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(trace))
        trace.prompt_len, trace.output_len = trace.prompt_len[order], trace.output_len[order]
    if max_total is not None:
        trace = cap_total_length(trace, max_total)
    trace.name = f"{trace.name}-infermax"
    return trace
