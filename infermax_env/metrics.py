"""Per-request and aggregate metrics of a simulation run, exportable without pandas."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

import numpy as np

PER_REQUEST_FIELDS = ("request_id", "arrival", "prompt_len", "output_len", "first_scheduled", "first_token",
                      "finish", "ttft", "tpot", "ttlt", "queueing_delay", "preemptions", "recomputed_tokens",
                      "rejected")


@dataclass
class RunMetrics:
    """Metrics of one run. ``requests`` holds per-request arrays (NaN for rejected requests);
    ``summary`` holds the aggregates."""

    requests: dict[str, np.ndarray]
    summary: dict[str, float]
    kv_utilization: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    iteration_start: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def __getitem__(self, key: str) -> float:
        return self.summary[key]

    def to_dict(self, per_request: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": dict(self.summary)}
        if per_request:
            out["requests"] = {k: [_jsonable(x) for x in v.tolist()] for k, v in self.requests.items()}
        return out

    def to_json(self, path: str | Path | None = None, per_request: bool = False) -> str:
        text = json.dumps(self.to_dict(per_request), indent=2, allow_nan=False, default=_jsonable)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self, path: str | Path) -> None:
        """One row per request."""
        with Path(path).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(PER_REQUEST_FIELDS)
            columns = [self.requests[name].tolist() for name in PER_REQUEST_FIELDS]
            writer.writerows(zip(*columns))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def compute_metrics(sim: Any, slo_ttft: float | None = None, slo_tpot: float | None = None) -> RunMetrics:
    """Metrics of the run so far of ``sim``, an :class:`~infermax_env.Simulator` (finished requests count;
    unfinished ones have NaN times).

    SLO attainment is the fraction of finished requests meeting both given targets (seconds); it is
    reported only when a target is given.
    """
    done = sim.finished
    arrival = sim.arrival
    ttft = sim.first_token_time - arrival
    ttlt = sim.finish_time - arrival
    multi = sim.output_len > 1
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(multi, (sim.finish_time - sim.first_token_time) / np.maximum(sim.output_len - 1, 1), np.nan)
    queueing = sim.first_scheduled_time - arrival
    requests = {
        "request_id": sim.workload.request_id, "arrival": arrival, "prompt_len": sim.prompt_len,
        "output_len": sim.output_len, "first_scheduled": sim.first_scheduled_time,
        "first_token": sim.first_token_time, "finish": sim.finish_time, "ttft": ttft, "tpot": tpot, "ttlt": ttlt,
        "queueing_delay": queueing, "preemptions": sim.num_preemptions, "recomputed_tokens": sim.recomputed_tokens,
        "rejected": sim.rejected,
    }
    ttft_done, ttlt_done = ttft[done], ttlt[done]
    tpot_done = tpot[done & multi]
    log = sim.log
    starts = np.asarray(log.start)
    times = np.asarray(log.batch_time)
    kv_util = np.asarray(log.kv_blocks, dtype=float) / sim.config.num_blocks
    first_arrival = float(arrival[0]) if sim.num_requests else 0.0
    makespan = (float(np.nanmax(sim.finish_time)) - first_arrival) if done.any() else 0.0
    output_tokens = int(sim.output_len[done].sum())
    summary: dict[str, float] = {
        "requests": sim.num_requests,
        "finished": int(done.sum()),
        "rejected": int(sim.rejected.sum()),
        "iterations": sim.num_iterations,
        "total_gpu_time": float(times.sum()),
        "idle_time": sim.total_idle_time,
        "makespan": makespan,
        "sum_ttlt": float(ttlt_done.sum()),
        "mean_ttlt": float(ttlt_done.mean()) if len(ttlt_done) else math.nan,
        "p50_ttlt": _percentile(ttlt_done, 50),
        "p99_ttlt": _percentile(ttlt_done, 99),
        "mean_ttft": float(ttft_done.mean()) if len(ttft_done) else math.nan,
        "p50_ttft": _percentile(ttft_done, 50),
        "p99_ttft": _percentile(ttft_done, 99),
        "mean_tpot": float(tpot_done.mean()) if len(tpot_done) else math.nan,
        "p50_tpot": _percentile(tpot_done, 50),
        "p99_tpot": _percentile(tpot_done, 99),
        "mean_queueing_delay": float(np.nanmean(queueing[done])) if done.any() else math.nan,
        "throughput_req_s": int(done.sum()) / makespan if makespan > 0 else math.nan,
        "throughput_tok_s": output_tokens / makespan if makespan > 0 else math.nan,
        "decode_tok_per_gpu_s": output_tokens / float(times.sum()) if len(times) else math.nan,
        "evictions": int(sim.num_preemptions.sum()),
        "recomputed_tokens": int(sim.recomputed_tokens.sum()),
        "mean_kv_utilization": float((kv_util * times).sum() / times.sum()) if len(times) else 0.0,
        "peak_kv_utilization": float(kv_util.max()) if len(kv_util) else 0.0,
        "mean_batch_tokens": float(np.mean(log.tokens)) if log.tokens else 0.0,
    }
    if slo_ttft is not None or slo_tpot is not None:
        ok = done.copy()
        if slo_ttft is not None:
            ok &= ttft <= slo_ttft
        if slo_tpot is not None:
            ok &= ~multi | (tpot <= slo_tpot)
        summary["slo_attainment"] = float(ok[done].mean()) if done.any() else math.nan
    return RunMetrics(requests, summary, kv_util, starts)


class Objective(str, Enum):
    """The scalar a scheduler minimises: ``"latency"`` = sum of TTLT, ``"gpu_time"`` = total GPU time.

    A ``str`` enum: ``Objective.LATENCY == "latency"``, and :meth:`parse` accepts either form.
    """

    LATENCY = "latency"
    GPU_TIME = "gpu_time"

    @classmethod
    def parse(cls, value: "Objective | str") -> "Objective":
        """The objective named ``value``; a ValueError naming the known ones otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {value!r}") from None

    @property
    def summary_key(self) -> str:
        """The :attr:`RunMetrics.summary` key holding this objective's value."""
        return "sum_ttlt" if self is Objective.LATENCY else "total_gpu_time"

    @property
    def description(self) -> str:
        return "sum of TTLT" if self is Objective.LATENCY else "total GPU time"


OBJECTIVES: tuple[str, ...] = tuple(objective.value for objective in Objective)
"""The objective names (e.g. for a command line's choices)."""


def objective_value(metrics: RunMetrics | Mapping[str, float], objective: Objective | str) -> float:
    """The value of ``objective`` in ``metrics`` (a :class:`RunMetrics` or its ``summary``)."""
    summary = metrics.summary if isinstance(metrics, RunMetrics) else metrics
    return summary[Objective.parse(objective).summary_key]
