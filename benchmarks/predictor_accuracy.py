"""Accuracy of the online output-length predictor on the Azure 2023 traces.

Each trace is replayed whole in the INFERMAX setting under Sarathi with output lengths hidden
(``oracle=False``). The predictor learns from every request as it finishes; each request's output length is
predicted once, at the first iteration after it arrives, from what had finished by then (so early requests
see a cold predictor). Reported: mean and median absolute error of the point prediction (median), the same
for a baseline that ignores the prompt (one histogram of all finished requests), and how often the true
length falls in the predicted 10-90% and 25-75% intervals and below the predicted median (nominal 80%, 50%,
50%).

    python benchmarks/predictor_accuracy.py [--trace conv code] [--trace-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from baselines import OutputLengthPredictor, make_scheduler
from baselines.predictor import feature_rows
from baselines.tracking import StepTracker
from infermax_env import LinearCostModel, Simulator, load_azure_trace
from infermax_env.instances import INFERMAX_ENGINE
from infermax_env.simulator import Decision

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


class PredictionRecorder:
    """Drives ``scheduler`` and records, for each request at its arrival, the quantiles predicted by
    ``predictor`` and by a prompt-blind ``baseline`` (both learning from finished requests only)."""

    def __init__(self, scheduler, predictor: OutputLengthPredictor, baseline: OutputLengthPredictor):
        self.scheduler = scheduler
        self.predictor = predictor
        self.baseline = baseline
        self.tracker = StepTracker()
        self.quantiles: np.ndarray = np.zeros((0, len(QUANTILES)))
        self.baseline_median: np.ndarray = np.zeros(0)

    def reset(self, sim: Simulator) -> None:
        self.scheduler.reset(sim)
        self.tracker.reset()
        self.quantiles = np.full((sim.num_requests, len(QUANTILES)), np.nan)
        self.baseline_median = np.full(sim.num_requests, np.nan)

    def decide(self, sim: Simulator) -> Decision:
        events = self.tracker.advance(sim)
        done = events.finished
        if len(done):
            self.predictor.update(sim.prompt_len[done], feature_rows(sim, done), sim.output_len[done])
            self.baseline.update(np.ones(len(done)), None, sim.output_len[done])
        new = events.arrived
        if len(new):
            distribution = self.predictor.distribution_for(sim.prompt_len[new], feature_rows(sim, new))
            self.quantiles[new] = np.stack([distribution.quantile(q) for q in QUANTILES], axis=1)
            self.baseline_median[new] = self.baseline.distribution_for(np.ones(len(new))).quantile(0.5)
        return self.scheduler.decide(sim)


def accuracy(kind: str, trace_dir: str | None) -> dict[str, float]:
    trace = load_azure_trace(kind, trace_dir)
    recorder = PredictionRecorder(make_scheduler("sarathi"), OutputLengthPredictor(), OutputLengthPredictor())
    start = time.perf_counter()
    Simulator(trace, LinearCostModel(), INFERMAX_ENGINE, oracle=False).run(recorder)
    wall = time.perf_counter() - start
    truth = trace.output_len.astype(float)
    q10, q25, median, q75, q90 = recorder.quantiles.T
    error = np.abs(median - truth)
    baseline_error = np.abs(recorder.baseline_median - truth)
    return {
        "requests": len(trace), "wall_s": wall, "mean_output": truth.mean(),
        "mae": error.mean(), "median_ae": np.median(error),
        "baseline_mae": baseline_error.mean(), "baseline_median_ae": np.median(baseline_error),
        "coverage_10_90": np.mean((truth >= q10) & (truth <= q90)),
        "coverage_25_75": np.mean((truth >= q25) & (truth <= q75)),
        "below_median": np.mean(truth <= median),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", nargs="+", choices=("conv", "code"), default=["conv", "code"],
                        help="Azure 2023 traces to measure the predictor on")
    parser.add_argument("--trace-dir", default=None,
                        help="directory holding azure_<trace>_2023.csv (default: $INFERMAX_TRACES or ../shared/traces)")
    args = parser.parse_args()
    print(f"{'trace':6s} {'requests':>8s} {'mean O':>7s} {'MAE':>7s} {'medAE':>6s} {'base MAE':>9s} "
          f"{'base medAE':>10s} {'in 10-90%':>9s} {'in 25-75%':>9s} {'<= median':>9s} {'wall s':>7s}")
    for kind in args.trace:
        r = accuracy(kind, args.trace_dir)
        print(f"{kind:6s} {r['requests']:8d} {r['mean_output']:7.1f} {r['mae']:7.1f} {r['median_ae']:6.1f} "
              f"{r['baseline_mae']:9.1f} {r['baseline_median_ae']:10.1f} {r['coverage_10_90']:9.1%} "
              f"{r['coverage_25_75']:9.1%} {r['below_median']:9.1%} {r['wall_s']:7.1f}")


if __name__ == "__main__":
    main()
