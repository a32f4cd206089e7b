"""Calibrate the roofline cost model's efficiency constants on measured transformer layers.

Fits one GPU-independent set of constants (compute and bandwidth efficiency, kernel launch latency, token
tile, overlap exponent) on every measured point (A100 80GB and A40, several models, TP 1-8), prints the
median and worst absolute percentage error (APE) per GPU and model and overall, then checks generalisation
by leave-one-GPU-out: fit on one GPU, predict the other from its datasheet numbers alone.

The fitted constants are the defaults of ``RooflineParams`` (infermax_env/cost/roofline.py); after a change
to the model or the data, paste the printed values there.

    python benchmarks/calibrate_roofline.py [path/to/linear_layers_measured.csv]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Sequence

from infermax_env.cost.calibration import (DEFAULT_TILE_CANDIDATES, ErrorSummary, LayerMeasurements,
                                           default_calibration_path, fit_roofline_params, leave_one_gpu_out,
                                           load_layer_measurements, summarize_errors)
from infermax_env.cost.roofline import RooflineParams

FITTED_FIELDS = ("compute_efficiency", "bandwidth_efficiency", "kernel_launch_s", "token_tile", "overlap_exponent")


def rounded(params: RooflineParams, digits: int = 4) -> RooflineParams:
    """``params`` with the fitted floats rounded to ``digits`` significant digits (the form pasted as defaults)."""
    return replace(params, **{name: float(f"{getattr(params, name):.{digits}g}") for name in FITTED_FIELDS
                              if isinstance(getattr(params, name), float)})


def format_params(params: RooflineParams) -> str:
    return ", ".join(f"{name}={getattr(params, name):.4g}" for name in FITTED_FIELDS)


def print_error_rows(rows: Sequence[ErrorSummary]) -> None:
    print(f"{'group':<52} {'points':>6} {'median APE %':>12} {'worst APE %':>11}")
    for row in rows:
        print(f"{row.label:<52} {row.points:>6} {row.median_ape:>12.2f} {row.worst_ape:>11.2f}")


def error_rows(measurements: Sequence[LayerMeasurements], params: RooflineParams) -> list[ErrorSummary]:
    """Per (device, model), per device, then overall."""
    rows = []
    devices = sorted({m.device for m in measurements})
    for device in devices:
        on_device = [m for m in measurements if m.device == device]
        for model in sorted({m.model.name for m in on_device}):
            group = [m for m in on_device if m.model.name == model]
            rows.append(summarize_errors(f"{device} {model}", group, params))
    rows += [summarize_errors(f"{device} (all models)", [m for m in measurements if m.device == device], params)
             for device in devices]
    rows.append(summarize_errors("overall", measurements, params))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="?", default=str(default_calibration_path()),
                        help="measured per-layer times (default: %(default)s)")
    parser.add_argument("--tiles", type=int, nargs="+", default=list(DEFAULT_TILE_CANDIDATES),
                        help="token tile candidates to try (default: %(default)s)")
    args = parser.parse_args()

    try:
        measurements = load_layer_measurements(args.csv)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    points = sum(len(m.num_tokens) for m in measurements)
    print(f"{points} measured points in {len(measurements)} (device, model, TP) configurations from {args.csv}")

    fitted = rounded(fit_roofline_params(measurements, args.tiles))
    print(f"\nfitted on all devices (4 significant digits): {format_params(fitted)}")
    print_error_rows(error_rows(measurements, fitted))

    defaults = RooflineParams()
    if any(getattr(defaults, name) != getattr(fitted, name) for name in FITTED_FIELDS):
        default_errors = summarize_errors("RooflineParams() defaults", measurements, defaults)
        print(f"\nthe RooflineParams() defaults differ from this fit: {format_params(defaults)}: median APE "
              f"{default_errors.median_ape:.2f} %, worst {default_errors.worst_ape:.2f} %; paste these:")
        for name in FITTED_FIELDS:
            print(f"    {name}: {type(getattr(fitted, name)).__name__} = {getattr(fitted, name)!r}")
    else:
        print("\nthe RooflineParams() defaults are this fit")

    print("\nleave-one-GPU-out (fit on the other GPUs, predict the held-out one from its datasheet):")
    for held_out, params, summary in leave_one_gpu_out(measurements, args.tiles):
        print(f"  predict {held_out:<5} median APE {summary.median_ape:5.2f} %, worst {summary.worst_ape:6.2f} % "
              f"({summary.points} points) with {format_params(params)}")


if __name__ == "__main__":
    main()
