"""The "tuned" baseline: SageSched's batch builder with a priority formula whose few weights are tuned by CEM.

Priority score of request ``r`` (higher runs first, lowest-scored resident is evicted first)::

    score_r = log G_r + w_kv * log1p(kv_r / 1000) + w_age * log1p(age_r / 1 s) + w_preempt * preemptions_r

with ``G_r`` SageSched's Gittins index of the remaining hybrid cost (from the online output-length
predictor), ``kv_r`` the KV tokens it holds (its footprint; a positive weight protects work already in memory),
``age_r`` the time since it arrived and ``preemptions_r`` how often it was evicted. Admission reserves the
``reserve_quantile`` of the predicted output length, as SageSched does. With every weight 0 and
``reserve_quantile = 0.5`` this *is* SageSched.

The weights in ``tuned_weights.json`` were found by the cross-entropy method (:func:`tune`) on training
windows of InferMax-v0 (seeds from ``agents.evaluation.training_seeds``, never an evaluation seed) at 0.5x,
1x and 1.5x the trace rate, minimising the mean of (sum of TTLT / SageSched's sum of TTLT) over the windows.
Retune with ``python benchmarks/retune_tuned.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from infermax_env.simulator import Simulator

from .builder import Order
from .predictor import OutputLengthPredictor
from .rules import LowestPriorityEviction
from .sagesched import GittinsOrder, PredictedReservation, PredictiveScheduler

WEIGHTS_PATH = Path(__file__).resolve().parent / "tuned_weights.json"
PARAMETERS = ("w_kv", "w_age", "w_preempt", "reserve_quantile")
SAGESCHED_PARAMETERS = {"w_kv": 0.0, "w_age": 0.0, "w_preempt": 0.0, "reserve_quantile": 0.5}


def stored_weights(path: Path = WEIGHTS_PATH) -> dict[str, float]:
    """The tuned parameters stored in the repo (``PARAMETERS`` keys)."""
    record = json.loads(Path(path).read_text())
    return check_weights(record["weights"])


def check_weights(weights: dict[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(PARAMETERS)
    missing = set(PARAMETERS) - set(weights)
    if unknown or missing:
        raise ValueError(f"tuned weights need exactly {list(PARAMETERS)}; unknown {sorted(unknown)}, missing "
                         f"{sorted(missing)}")
    bad = {k: v for k, v in weights.items() if not np.isfinite(v)}
    if bad:
        raise ValueError(f"tuned weights must be finite, got {bad}")
    if not 0.0 < weights["reserve_quantile"] < 1.0:
        raise ValueError(f"reserve_quantile must be in (0, 1), got {weights['reserve_quantile']!r}")
    return {k: float(weights[k]) for k in PARAMETERS}


class FormulaOrder(Order):
    """Lowest key first, key = -score (the module docstring's formula)."""

    dynamic = True

    def __init__(self, predictor: OutputLengthPredictor, w_kv: float, w_age: float, w_preempt: float):
        self.gittins = GittinsOrder(predictor)
        self.w_kv, self.w_age, self.w_preempt = w_kv, w_age, w_preempt

    def reset(self, sim: Simulator) -> None:
        self.gittins.reset(sim)

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        index = -self.gittins.keys(sim, ids)
        score = np.log(np.maximum(index, 1e-300))
        if self.w_kv:
            score = score + self.w_kv * np.log1p(sim.kv[ids] / 1000.0)
        if self.w_age:
            score = score + self.w_age * np.log1p(np.maximum(sim.clock - sim.arrival[ids], 0.0))
        if self.w_preempt:
            score = score + self.w_preempt * sim.num_preemptions[ids]
        return -score


class TunedScheduler(PredictiveScheduler):
    """SageSched's structure with the tuned priority formula (see the module docstring).

    Args:
        weights: ``PARAMETERS`` -> value; None loads ``tuned_weights.json``.
        predictor: the output-length predictor (a fresh one by default).
        warm_start: keep what the predictor learned across runs.
        refresh_interval: iterations between re-ranking the waiting queue.
    """

    name = "tuned"
    requires_oracle = False

    def __init__(self, weights: dict[str, float] | None = None, predictor: OutputLengthPredictor | None = None,
                 warm_start: bool = False, refresh_interval: int = 200) -> None:
        self.weights = stored_weights() if weights is None else check_weights(weights)
        predictor = predictor or OutputLengthPredictor()
        w = self.weights
        super().__init__(predictor, warm_start,
                         order=FormulaOrder(predictor, w["w_kv"], w["w_age"], w["w_preempt"]),
                         eviction=LowestPriorityEviction(),
                         reservation=PredictedReservation(predictor, w["reserve_quantile"]),
                         decodes_first=False, chunked=True, refresh_interval=refresh_interval)


# ---- tuning ------------------------------------------------------------------------------------------------
def relative_cost(weights: dict[str, float], workloads, references: list[float], engine, cost_model) -> float:
    """Mean over ``workloads`` of sum of TTLT under ``weights`` divided by ``references`` (SageSched's)."""
    ratios = []
    for workload, reference in zip(workloads, references):
        sim = Simulator(workload, cost_model, engine, oracle=False)
        ratios.append(sim.run(TunedScheduler(weights)).summary["sum_ttlt"] / reference)
    return float(np.mean(ratios))


def tune(workloads, engine, cost_model, iterations: int = 8, population: int = 12, elite: int = 3, seed: int = 0,
         log=print, on_best=None) -> tuple[dict[str, float], float]:
    """Cross-entropy method over ``PARAMETERS`` from SageSched's values; returns the best weights seen and
    their relative cost (1.0 = SageSched). ``on_best(weights, cost, iteration)`` is called after every
    iteration with the best so far (to save progress)."""
    rng = np.random.default_rng(seed)
    references = [Simulator(w, cost_model, engine, oracle=False).run(TunedScheduler(SAGESCHED_PARAMETERS))
                  .summary["sum_ttlt"] for w in workloads]
    mean = np.array([SAGESCHED_PARAMETERS[k] for k in PARAMETERS])
    std = np.array([0.5, 0.5, 0.5, 0.15])
    low, high = np.array([-3.0, -3.0, -3.0, 0.05]), np.array([3.0, 3.0, 3.0, 0.95])
    best, best_cost = dict(SAGESCHED_PARAMETERS), 1.0
    for iteration in range(iterations):
        samples = np.clip(mean + std * rng.standard_normal((population, len(PARAMETERS))), low, high)
        samples[0] = mean
        costs = np.array([relative_cost(dict(zip(PARAMETERS, s)), workloads, references, engine, cost_model)
                          for s in samples])
        order = np.argsort(costs)
        if costs[order[0]] < best_cost:
            best, best_cost = dict(zip(PARAMETERS, samples[order[0]].tolist())), float(costs[order[0]])
        elites = samples[order[:elite]]
        mean, std = elites.mean(axis=0), np.maximum(elites.std(axis=0), 0.02)
        log(f"CEM iteration {iteration + 1}/{iterations}: best {costs[order[0]]:.4f} mean-of-elites "
            f"{costs[order[:elite]].mean():.4f} overall best {best_cost:.4f} {best}")
        if on_best is not None:
            on_best(best, best_cost, iteration + 1)
    return best, best_cost
