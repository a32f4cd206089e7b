"""An online output-length distribution predictor (SageSched-style), reusable by schedulers and observations.

:class:`OutputLengthPredictor` keeps, per request class, a histogram of the output lengths of finished
requests. A request's class is its prompt-length bucket (``prompt_buckets_per_octave`` buckets per doubling
of I) and, optionally, a categorical feature column of the workload. Output lengths fall in geometric bins
(``bins_per_octave`` per doubling). A class's histogram is smoothed toward the histogram of all finished
requests (``prior_strength`` pseudo-observations); before anything has finished the prediction is a point
mass at ``default_output``. The distribution of a running request is conditioned on what it already
generated (O > generated). Output lengths are read only for finished requests; every query on a simulator
first learns from the requests of that simulator that finished since the previous query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infermax_env.simulator import Simulator

from .tracking import StepTracker


def log2_bucket(lengths: np.ndarray, per_octave: int, num_buckets: int) -> np.ndarray:
    """``floor(log2(length) * per_octave)``, clipped to ``[0, num_buckets - 1]``."""
    raw = np.floor(np.log2(np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)) * per_octave)
    return np.minimum(raw.astype(np.int64), num_buckets - 1)


@dataclass
class OutputDistribution:
    """Per-request histograms of output length: bin ``j`` of request ``i`` holds probability ``probs[i, j]``
    spread uniformly over the integers ``lower[i, j]..upper[i, j]``. Rows sum to 1; bins with no mass may
    have ``lower > upper``."""

    lower: np.ndarray
    upper: np.ndarray
    probs: np.ndarray

    def quantile(self, q: float) -> np.ndarray:
        """The ``q``-quantile of each row (linear within a bin), as floats."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile q must be in (0, 1), got {q!r}")
        cdf = np.cumsum(self.probs, axis=1)
        rows = np.arange(len(cdf))
        j = np.minimum((cdf < q - 1e-12).sum(axis=1), cdf.shape[1] - 1)
        p = self.probs[rows, j]
        before = cdf[rows, j] - p
        frac = np.clip(np.divide(q - before, p, out=np.ones(len(p)), where=p > 0), 0.0, 1.0)
        lo, hi = self.lower[rows, j], self.upper[rows, j]
        return np.minimum(lo + frac * (hi + 1 - lo), hi).astype(np.float64)

    def midpoints(self) -> np.ndarray:
        return (self.lower + self.upper) / 2.0

    def mean(self) -> np.ndarray:
        return (self.probs * np.where(self.probs > 0, self.midpoints(), 0.0)).sum(axis=1)


class OutputLengthPredictor:
    """Online per-class histogram predictor of output length (see the module docstring).

    Args:
        prompt_buckets_per_octave: prompt-length classes per doubling of I.
        bins_per_octave: output-length histogram bins per doubling.
        max_output_len: top of the histogram (longer outputs count in the last bin).
        prior_strength: pseudo-observations of the global histogram mixed into each class's histogram.
        default_output: the prediction before any request has finished.
        feature_column: a column of ``workload.features`` holding a category (rounded to an integer, taken
            modulo ``num_categories``) that refines the classes; None uses the prompt length only.
        num_categories: categories kept for ``feature_column``.
    """

    def __init__(self, prompt_buckets_per_octave: int = 2, bins_per_octave: int = 4, max_output_len: int = 32_768,
                 prior_strength: float = 4.0, default_output: int = 128, feature_column: int | None = None,
                 num_categories: int = 8):
        for value, label in ((prompt_buckets_per_octave, "prompt_buckets_per_octave"),
                             (bins_per_octave, "bins_per_octave"), (max_output_len, "max_output_len"),
                             (default_output, "default_output"), (num_categories, "num_categories")):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"OutputLengthPredictor: {label} must be a positive integer, got {value!r}")
        if not prior_strength >= 0:
            raise ValueError(f"OutputLengthPredictor: prior_strength must be >= 0, got {prior_strength!r}")
        self.prompt_buckets_per_octave = int(prompt_buckets_per_octave)
        self.bins_per_octave = int(bins_per_octave)
        self.max_output_len = int(max_output_len)
        self.prior_strength = float(prior_strength)
        self.default_output = int(default_output)
        self.feature_column = feature_column
        self.num_categories = int(num_categories) if feature_column is not None else 1
        octaves = int(np.ceil(np.log2(self.max_output_len + 1)))
        steps = np.arange(octaves * self.bins_per_octave + 1)
        self.edges = np.unique(np.floor(2.0 ** (steps / self.bins_per_octave)).astype(np.int64))
        self.num_prompt_buckets = 32 * self.prompt_buckets_per_octave
        self.num_bins = len(self.edges) - 1
        self._upper = self.edges[1:] - 1  # inclusive top of each bin; the last bin reaches max_output_len
        self._upper[-1] = max(self._upper[-1], self.max_output_len)
        self._tracker = StepTracker()
        self.reset()

    def reset(self, sim: Simulator | None = None) -> None:
        """Forget every observation (``sim`` is accepted for the env's per-episode ``reset(sim)`` hook)."""
        self.counts = np.zeros((self.num_prompt_buckets * self.num_categories, self.num_bins))
        self.global_counts = np.zeros(self.num_bins)
        self.num_observed = 0
        self._tracker.reset()
        self._version = 0
        self._cache: dict[object, np.ndarray] = {}

    @property
    def version(self) -> int:
        """How many batches of finished requests have been learned (changes whenever predictions may)."""
        return self._version

    # ---- learning ------------------------------------------------------------------------------
    def update(self, prompt_len: np.ndarray, features: np.ndarray | None, output_len: np.ndarray) -> None:
        """Add finished requests (prompt lengths, their feature rows or None, and their output lengths)."""
        prompt_len = np.asarray(prompt_len, dtype=np.int64).reshape(-1)
        output_len = np.asarray(output_len, dtype=np.int64).reshape(-1)
        if len(prompt_len) != len(output_len):
            raise ValueError(f"update got {len(prompt_len)} prompt lengths but {len(output_len)} output lengths")
        if not len(prompt_len):
            return
        if (output_len < 1).any():
            raise ValueError(f"output lengths must be >= 1, got {output_len[output_len < 1][:3].tolist()}")
        classes = self._classes(prompt_len, features)
        bins = self._bin_of(output_len)
        np.add.at(self.counts, (classes, bins), 1.0)
        np.add.at(self.global_counts, bins, 1.0)
        self.num_observed += len(prompt_len)
        self._version += 1

    def observe_finished(self, sim: Simulator) -> int:
        """Learn from the requests of ``sim`` that finished since the previous call; returns how many."""
        finished = self._tracker.advance(sim).finished
        self.update(sim.prompt_len[finished], feature_rows(sim, finished), sim.output_len[finished])
        return len(finished)

    # ---- predicting ----------------------------------------------------------------------------
    def distribution(self, sim: Simulator, ids: np.ndarray) -> OutputDistribution:
        """Output-length distributions of requests ``ids`` of ``sim``, given what each has generated, after
        learning from the requests of ``sim`` that finished since the last look (so ``predict`` alone keeps
        the predictor up to date, as the env's observation uses it)."""
        self.observe_finished(sim)
        ids = np.asarray(ids, dtype=np.int64)
        return self.distribution_for(sim.prompt_len[ids], feature_rows(sim, ids), sim.generated[ids])

    def predict(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        """Point prediction (conditional median) of the output length of requests ``ids``."""
        return self.distribution(sim, ids).quantile(0.5)

    def quantile(self, sim: Simulator, ids: np.ndarray, q: float) -> np.ndarray:
        return self.distribution(sim, ids).quantile(q)

    def distribution_for(self, prompt_len: np.ndarray, features: np.ndarray | None = None,
                         generated: np.ndarray | None = None) -> OutputDistribution:
        """Distributions for requests described by their prompt lengths, feature rows and generated tokens
        (the distribution is conditioned on O > generated)."""
        classes = self._classes(np.asarray(prompt_len, dtype=np.int64).reshape(-1), features)
        n = len(classes)
        probs = self._class_probs()[classes]
        lower = np.broadcast_to(self.edges[:-1], (n, self.num_bins))
        upper = np.broadcast_to(self._upper, (n, self.num_bins))
        if generated is None or not np.any(generated):
            return OutputDistribution(lower, upper, probs)
        return self._condition(lower, upper.copy(), probs, np.asarray(generated, dtype=np.int64))

    def class_quantile(self, prompt_len: np.ndarray, features: np.ndarray | None, q: float) -> np.ndarray:
        """The ``q``-quantile of the (unconditioned) output length of each request's class."""
        key = ("quantile", q)
        self._class_probs()  # drops stale tables
        table = self._cache.get(key)
        if table is None:
            everyone = OutputDistribution(np.broadcast_to(self.edges[:-1], (len(self.counts), self.num_bins)),
                                          np.broadcast_to(self._upper, (len(self.counts), self.num_bins)),
                                          self._class_probs())
            table = self._cache[key] = everyone.quantile(q)
        return table[self._classes(np.asarray(prompt_len, dtype=np.int64).reshape(-1), features)]

    # ---- internals -----------------------------------------------------------------------------
    def _class_probs(self) -> np.ndarray:
        """Smoothed histogram of every class (cached until the next update)."""
        if self._cache.get("version") != self._version:
            self._cache = {"version": self._version}
        table = self._cache.get("probs")
        if table is None:
            cold = np.zeros(self.num_bins)
            cold[self._bin_of(np.array([self.default_output]))[0]] = 1.0
            prior = (self.global_counts + cold) / (self.num_observed + 1.0)
            table = (self.counts + self.prior_strength * prior) / (
                self.counts.sum(axis=1, keepdims=True) + self.prior_strength)
            self._cache["probs"] = table
        return table

    def _bin_of(self, output_len: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, output_len, side="right") - 1, 0, self.num_bins - 1)

    def _classes(self, prompt_len: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        buckets = log2_bucket(prompt_len, self.prompt_buckets_per_octave, self.num_prompt_buckets)
        if self.feature_column is None or features is None:
            return buckets * self.num_categories
        category = np.rint(np.asarray(features)[:, self.feature_column]).astype(np.int64) % self.num_categories
        return buckets * self.num_categories + category

    def _condition(self, lower: np.ndarray, upper: np.ndarray, probs: np.ndarray,
                   generated: np.ndarray) -> OutputDistribution:
        """Restrict each row to O > generated (uniform within bins); a row with no mass left becomes a point
        mass at generated + 1."""
        floor = generated[:, None] + 1
        lower = np.maximum(lower, floor)
        width = self.edges[1:] - self.edges[:-1]
        kept = np.clip((upper - lower + 1) / width, 0.0, 1.0)
        kept[:, -1] = np.clip((upper[:, -1] - lower[:, -1] + 1) / (upper[:, -1] - self.edges[-2] + 1), 0.0, 1.0)
        probs = probs * kept
        total = probs.sum(axis=1)
        empty = np.flatnonzero(total <= 0)
        if len(empty):
            bins = self._bin_of(floor[empty, 0])
            probs[empty] = 0.0
            probs[empty, bins] = 1.0
            lower[empty, bins] = floor[empty, 0]
            upper[empty, bins] = floor[empty, 0]
            total[empty] = 1.0
        return OutputDistribution(lower, upper, probs / total[:, None])


def feature_rows(sim: Simulator, ids: np.ndarray) -> np.ndarray | None:
    """The workload feature rows of requests ``ids`` (None when the workload has no features)."""
    features = sim.workload.features
    return None if features is None else features[ids]
