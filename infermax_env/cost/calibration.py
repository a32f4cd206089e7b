"""Calibrating :class:`~infermax_env.cost.roofline.RooflineParams` on measured transformer layers.

The measurements (Vidur's public profiling data, ``shared/calibration/linear_layers_measured.csv``) give
the median milliseconds of one transformer layer without its attention kernel, per GPU, model shape,
tensor parallelism and batch token count. :func:`fit_roofline_params` fits one GPU-independent set of
constants by least squares on ``log(predicted / measured)``, so that the fitted model predicts a GPU it was
not fitted on from its datasheet numbers alone (:func:`leave_one_gpu_out` checks exactly that).

Only numpy is used: the continuous constants are fitted by Levenberg-Marquardt with a finite-difference
Jacobian, the integer token tile by trying each candidate.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..hardware import GPUSpec, get_gpu
from ..models import ModelSpec
from .roofline import RooflineParams, ShardedLayer, linear_layer_seconds

#: GPU registry names of the ``device`` column values.
DEVICE_GPUS = {"a100": "a100-80gb", "a40": "a40"}

REQUIRED_COLUMNS = ("device", "model", "hidden_size", "num_heads", "num_kv_heads", "ffn_size", "vocab_size",
                    "gated_mlp", "tensor_parallel", "num_tokens", "per_layer_ms")

#: Where the fit starts: plausible values inside every constant's range (not the fitted defaults, so that
#: a refit does not depend on the previous one).
FIT_START = RooflineParams(compute_efficiency=0.7, bandwidth_efficiency=0.8, kernel_launch_s=5e-6,
                           overlap_exponent=2.0)

#: Token tiles :func:`fit_roofline_params` tries by default.
DEFAULT_TILE_CANDIDATES = (1, 16, 32, 64, 128)

CALIBRATION_FILE_NAME = "linear_layers_measured.csv"


def default_calibration_path() -> Path:
    """``shared/calibration/linear_layers_measured.csv`` beside the repository checkout (may not exist)."""
    repository = Path(__file__).resolve().parents[2]
    return repository.parent / "shared" / "calibration" / CALIBRATION_FILE_NAME


@dataclass(frozen=True)
class LayerMeasurements:
    """Measured per-layer times of one (device, model, tensor parallelism) configuration.

    Attributes:
        device: the ``device`` column value (e.g. ``"a100"``).
        model: the model's shape (``num_layers`` 1: the data is per layer).
        gpu: the GPU the device name maps to in :data:`DEVICE_GPUS`.
        tensor_parallel: GPUs the layer is sharded over.
        num_tokens: batch token counts measured.
        per_layer_ms: median measured milliseconds at each token count.
    """

    device: str
    model: ModelSpec
    gpu: GPUSpec
    tensor_parallel: int
    num_tokens: np.ndarray
    per_layer_ms: np.ndarray

    def predict_ms(self, params: RooflineParams) -> np.ndarray:
        """The roofline model's milliseconds at every measured token count."""
        layer = ShardedLayer.of(self.model, self.tensor_parallel)
        return 1e3 * linear_layer_seconds(self.num_tokens, layer, self.model.dtype_bytes, self.gpu, params)


def load_layer_measurements(path: str | Path) -> list[LayerMeasurements]:
    """Read the calibration CSV into one :class:`LayerMeasurements` per configuration.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a required column is missing or a device is not in :data:`DEVICE_GPUS`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration data not found at {path}; pass the path of "
                                f"linear_layers_measured.csv")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; it has {reader.fieldnames}")
        rows_by_config: dict[tuple[str, str, int], list[dict[str, str]]] = {}
        for row in reader:
            key = (row["device"], row["model"], int(row["tensor_parallel"]))
            rows_by_config.setdefault(key, []).append(row)
    return [_config_measurements(device, tp, rows) for (device, _, tp), rows in rows_by_config.items()]


def _config_measurements(device: str, tensor_parallel: int, rows: list[dict[str, str]]) -> LayerMeasurements:
    if device not in DEVICE_GPUS:
        raise ValueError(f"unknown device {device!r} in the calibration data; known: {sorted(DEVICE_GPUS)}")
    first = rows[0]
    model = ModelSpec(name=first["model"], num_layers=1, hidden_size=int(first["hidden_size"]),
                      num_heads=int(first["num_heads"]), num_kv_heads=int(first["num_kv_heads"]),
                      intermediate_size=int(first["ffn_size"]), vocab_size=int(first["vocab_size"]),
                      gated_mlp=first["gated_mlp"].strip().lower() in ("true", "1"))
    return LayerMeasurements(device=device, model=model, gpu=get_gpu(DEVICE_GPUS[device]),
                             tensor_parallel=tensor_parallel,
                             num_tokens=np.array([int(row["num_tokens"]) for row in rows], dtype=np.int64),
                             per_layer_ms=np.array([float(row["per_layer_ms"]) for row in rows]))


def absolute_percentage_errors(measurements: Iterable[LayerMeasurements], params: RooflineParams) -> np.ndarray:
    """``100 * |predicted - measured| / measured`` for every measured point, configurations concatenated."""
    return np.concatenate([100.0 * np.abs(m.predict_ms(params) / m.per_layer_ms - 1.0) for m in measurements])


def _log_residuals(measurements: Sequence[LayerMeasurements], params: RooflineParams) -> np.ndarray:
    return np.concatenate([np.log(m.predict_ms(params) / m.per_layer_ms) for m in measurements])


def _logit(value: float) -> float:
    clipped = min(max(value, 1e-6), 1.0 - 1e-6)
    return float(np.log(clipped / (1.0 - clipped)))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -13.0, 13.0))))


# The fitted continuous constants and how each maps to an unconstrained coordinate (logit for fractions
# in (0, 1), log for a positive latency, log(p - 1) for an exponent above 1).
_FREE_PARAMS: tuple[tuple[str, Callable[[float], float], Callable[[float], float]], ...] = (
    ("compute_efficiency", _logit, _sigmoid),
    ("bandwidth_efficiency", _logit, _sigmoid),
    ("kernel_launch_s", lambda v: float(np.log(v)), lambda x: float(np.exp(x))),
    ("overlap_exponent", lambda v: float(np.log(v - 1.0)), lambda x: float(1.0 + np.exp(x))),
)


def _to_coordinates(params: RooflineParams) -> np.ndarray:
    return np.array([forward(getattr(params, name)) for name, forward, _ in _FREE_PARAMS])


def _from_coordinates(base: RooflineParams, x: np.ndarray) -> RooflineParams:
    return replace(base, **{name: inverse(value) for (name, _, inverse), value in zip(_FREE_PARAMS, x)})


def _levenberg_marquardt(measurements: Sequence[LayerMeasurements], start: RooflineParams,
                         iterations: int = 60, step: float = 1e-5) -> tuple[RooflineParams, float]:
    """Minimise the sum of squared log residuals over the continuous constants from ``start``."""
    x = _to_coordinates(start)
    residuals = _log_residuals(measurements, start)
    cost = float(residuals @ residuals)
    damping = 1e-3
    for _ in range(iterations):
        jacobian = np.stack([
            (_log_residuals(measurements, _from_coordinates(start, x + step * unit)) - residuals) / step
            for unit in np.eye(len(x))], axis=1)
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ residuals
        while damping < 1e8:
            candidate = x - np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), gradient)
            candidate_residuals = _log_residuals(measurements, _from_coordinates(start, candidate))
            candidate_cost = float(candidate_residuals @ candidate_residuals)
            if candidate_cost < cost:
                improvement = (cost - candidate_cost) / cost
                x, residuals, cost = candidate, candidate_residuals, candidate_cost
                damping = max(damping / 10.0, 1e-9)
                break
            damping *= 10.0
        else:
            break
        if improvement < 1e-9:
            break
    return _from_coordinates(start, x), cost


def fit_roofline_params(measurements: Sequence[LayerMeasurements],
                        tile_candidates: Sequence[int] = DEFAULT_TILE_CANDIDATES,
                        start: RooflineParams = FIT_START) -> RooflineParams:
    """Fit compute and bandwidth efficiency, kernel launch latency and overlap exponent (continuous, by
    Levenberg-Marquardt in log space) for each token tile candidate; return the best fit.

    Constants the layer data cannot see (all-reduce, per-iteration overhead) are kept from ``start``.
    """
    if not measurements:
        raise ValueError("fit_roofline_params needs at least one LayerMeasurements")
    if not tile_candidates:
        raise ValueError("fit_roofline_params needs at least one token tile candidate")
    fits = [_levenberg_marquardt(measurements, replace(start, token_tile=int(tile))) for tile in tile_candidates]
    best, _ = min(fits, key=lambda fit: fit[1])
    return best


@dataclass(frozen=True)
class ErrorSummary:
    """Median and worst absolute percentage error of a group of measured points."""

    label: str
    points: int
    median_ape: float
    worst_ape: float


def summarize_errors(label: str, measurements: Sequence[LayerMeasurements], params: RooflineParams) -> ErrorSummary:
    """Median and worst APE of ``params`` over all points of ``measurements``."""
    errors = absolute_percentage_errors(measurements, params)
    return ErrorSummary(label, len(errors), float(np.median(errors)), float(errors.max()))


def leave_one_gpu_out(measurements: Sequence[LayerMeasurements],
                      tile_candidates: Sequence[int] = DEFAULT_TILE_CANDIDATES,
                      start: RooflineParams = FIT_START) -> list[tuple[str, RooflineParams, ErrorSummary]]:
    """For each device: fit on all the other devices, then measure the errors on the held-out one.

    Returns ``(held-out device, params fitted without it, its error summary)`` per device.
    """
    devices = sorted({m.device for m in measurements})
    if len(devices) < 2:
        raise ValueError(f"leave-one-GPU-out needs at least two devices, the data has {devices}")
    results = []
    for held_out in devices:
        train = [m for m in measurements if m.device != held_out]
        test = [m for m in measurements if m.device == held_out]
        params = fit_roofline_params(train, tile_candidates, start)
        results.append((held_out, params, summarize_errors(held_out, test, params)))
    return results
