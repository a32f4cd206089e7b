"""Cost models: INFERMAX's linear model (the paper's worked values, fitting) and the roofline model
(physical sanity, vectorised speed, calibration on the measured layers when ../shared is present)."""

from __future__ import annotations

import timeit
from dataclasses import replace

import numpy as np
import pytest

from infermax_env.batch import Batch
from infermax_env.cost import BREAKDOWN_KEYS, LinearCoefficients, LinearCostModel
from infermax_env.cost.calibration import (LayerMeasurements, absolute_percentage_errors, default_calibration_path,
                                           fit_roofline_params, leave_one_gpu_out, load_layer_measurements)
from infermax_env.cost.roofline import RooflineCostModel, RooflineParams
from infermax_env.hardware import get_gpu
from infermax_env.models import ModelSpec, get_model

EMPTY = Batch.of()

# One batch of each shape the simulator produces: decodes only, prefill only, chunk over a cache,
# mixtures, a chunk that does not finish its prefill (no sample).
SAMPLE_BATCHES = [
    Batch.of(decodes=[1000]),
    Batch.of(decodes=[10, 500, 3000, 70]),
    Batch.of(prefills=[(2048, 0)]),
    Batch.of(prefills=[(512, 1500)], decodes=[200] * 30),
    Batch.of(prefills=[(100, 0), (300, 40)], decodes=[5, 9]),
    Batch.of(prefills=[(256, 0)], prefill_samples=0),
]


# ---- LinearCostModel -------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch, expected_seconds", [
    (Batch.of(decodes=[1000]), 0.0195),
    (Batch.of(decodes=[1000] * 256), 0.096),
    (Batch.of(decodes=[1000] * 64), 0.039),
    (Batch.of(prefills=[(2048, 0)]), 0.372),
    (Batch.of(prefills=[(16384, 0)]), 3.58),
    (Batch.of(prefills=[(512, 0)], decodes=[1000] * 256), 0.196),
], ids=["1-decode", "256-decodes", "64-decodes", "prefill-2048", "prefill-16384", "chunk-512+256-decodes"])
def test_linear_model_reproduces_reference_worked_values(batch, expected_seconds):
    assert LinearCostModel().batch_time(batch) == pytest.approx(expected_seconds, rel=0.01)


def test_linear_fit_recovers_known_coefficients():
    truth = LinearCoefficients(a_o=0.003, b_o=0.2, a_d=2e-6, b_d=0.05, s_d=5e-4, a_p=3e-8, b_p=0.3, s_p=1e-3,
                               m_p=5e-7)
    model = LinearCostModel(truth, num_layers=32)
    rng = np.random.default_rng(7)
    batches = []
    for _ in range(80):
        num_prefills, num_decodes = rng.integers(0, 4), rng.integers(0, 40)
        if num_prefills + num_decodes == 0:
            num_decodes = 1
        prefills = [(int(rng.integers(1, 2048)), int(rng.integers(0, 4096))) for _ in range(num_prefills)]
        batches.append(Batch.of(prefills, rng.integers(1, 4000, num_decodes).tolist()))
    fitted = LinearCostModel.fit(batches, [model.batch_time(b) for b in batches], num_layers=32)
    for name in LinearCoefficients.__dataclass_fields__:
        assert getattr(fitted.coefficients, name) == pytest.approx(getattr(truth, name), rel=1e-6), name


def test_linear_fit_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 batches but 1 times"):
        LinearCostModel.fit([EMPTY, EMPTY], [0.1])


# ---- both models -----------------------------------------------------------------------------------------

COST_MODELS = [LinearCostModel(), RooflineCostModel("llama-3-70b", "a100-80gb", tensor_parallel=4),
               RooflineCostModel("llama-3-8b", "h100-sxm")]


@pytest.mark.parametrize("cost_model", COST_MODELS, ids=repr)
def test_breakdown_has_the_keys_and_sums_to_batch_time(cost_model):
    for batch in SAMPLE_BATCHES:
        parts = cost_model.breakdown(batch)
        assert tuple(parts) == BREAKDOWN_KEYS
        assert all(value >= 0 for value in parts.values())
        assert sum(parts.values()) == pytest.approx(cost_model.batch_time(batch), rel=1e-12)
        assert cost_model.batch_time(batch) > 0


@pytest.mark.parametrize("cost_model", COST_MODELS, ids=repr)
def test_empty_batch_costs_nothing(cost_model):
    assert cost_model.batch_time(EMPTY) == 0.0
    assert all(value == 0.0 for value in cost_model.breakdown(EMPTY).values())


# ---- RooflineCostModel -----------------------------------------------------------------------------------

def test_single_decode_is_near_the_weights_read_floor():
    model = get_model("llama-3-8b")
    gpu = get_gpu("a100-80gb")
    floor = model.param_bytes / gpu.memory_bandwidth  # 7.9 ms: every weight read once at peak bandwidth
    cost = RooflineCostModel(model, gpu)
    parts = cost.breakdown(Batch.of(decodes=[1]))
    weights_read = parts["linear"] + parts["lm_head"]
    assert floor < weights_read < 1.5 * floor
    assert floor < cost.batch_time(Batch.of(decodes=[1])) < 1.7 * floor
    assert parts["attention"] < 0.05 * floor and parts["communication"] == 0.0


def test_time_grows_with_tokens():
    cost = RooflineCostModel("llama-3-8b", "a100-80gb")
    sizes = [1, 2, 16, 63, 64, 65, 128, 500, 2048, 8192]
    prefill_times = [cost.batch_time(Batch.of(prefills=[(n, 0)])) for n in sizes]
    decode_times = [cost.batch_time(Batch.of(decodes=[100] * n)) for n in sizes]
    assert np.all(np.diff(prefill_times) > 0)
    assert np.all(np.diff(decode_times) > 0)
    # Compute bound at large batches: 4x the tokens costs about 4x.
    assert prefill_times[-1] / prefill_times[-2] == pytest.approx(4.0, rel=0.15)


def test_time_grows_with_context_length():
    cost = RooflineCostModel("llama-3-70b", "a100-80gb", tensor_parallel=4)
    contexts = [0, 10, 100, 1000, 10_000, 100_000]
    decode_times = [cost.batch_time(Batch.of(decodes=[c] * 32)) for c in contexts]
    chunk_times = [cost.batch_time(Batch.of(prefills=[(512, c)])) for c in contexts]
    assert np.all(np.diff(decode_times) > 0)
    assert np.all(np.diff(chunk_times) > 0)


def test_tensor_parallelism_shards_compute_and_adds_communication():
    batch = Batch.of(prefills=[(8192, 0)])
    tp1 = RooflineCostModel("llama-3-70b", "a100-80gb").breakdown(batch)
    tp4 = RooflineCostModel("llama-3-70b", "a100-80gb", tensor_parallel=4).breakdown(batch)
    assert tp4["linear"] == pytest.approx(tp1["linear"] / 4, rel=0.1)
    assert tp4["attention"] == pytest.approx(tp1["attention"] / 4, rel=0.1)
    assert tp1["communication"] == 0.0 < tp4["communication"]


def test_lm_head_prices_only_sampling_sequences():
    cost = RooflineCostModel("llama-3-8b", "a100-80gb")
    assert cost.breakdown(Batch.of(prefills=[(256, 0)], prefill_samples=0))["lm_head"] == 0.0
    one = cost.breakdown(Batch.of(prefills=[(256, 0)]))["lm_head"]
    many = cost.breakdown(Batch.of(prefills=[(256, 0)], decodes=[10] * 255))["lm_head"]
    assert 0.0 < one < many


def test_accepts_registry_names_and_specs():
    by_name = RooflineCostModel("llama-3-8b", "a100-80gb")
    by_spec = RooflineCostModel(get_model("llama-3-8b"), get_gpu("a100-80gb"))
    batch = SAMPLE_BATCHES[3]
    assert by_name.batch_time(batch) == by_spec.batch_time(batch)


def test_a_faster_gpu_is_faster():
    batch = SAMPLE_BATCHES[3]
    times = [RooflineCostModel("llama-3-8b", gpu).batch_time(batch) for gpu in ("a40", "a100-80gb", "h100-sxm")]
    assert times[0] > times[1] > times[2]


@pytest.mark.parametrize("kwargs, message", [
    ({"tensor_parallel": 3}, "tensor_parallel=3 does not divide num_heads=32"),
    ({"tensor_parallel": 0}, "tensor_parallel must be a positive integer, got 0"),
    ({"gpu": "b300"}, "unknown GPU 'b300'"),
])
def test_bad_configuration_is_named(kwargs, message):
    arguments = {"model": "llama-3-8b", "gpu": "a100-80gb", **kwargs}
    with pytest.raises(ValueError, match=message):
        RooflineCostModel(**arguments)


@pytest.mark.parametrize("field, value", [("compute_efficiency", 1.5), ("bandwidth_efficiency", 0.0),
                                          ("token_tile", 0), ("overlap_exponent", 0.5), ("kernel_launch_s", -1.0)])
def test_bad_params_are_named(field, value):
    with pytest.raises(ValueError, match=f"RooflineParams.{field}"):
        RooflineParams(**{field: value})


def test_batch_time_of_hundreds_of_requests_costs_microseconds():
    cost = RooflineCostModel("llama-3-70b", "a100-80gb", tensor_parallel=4)
    rng = np.random.default_rng(0)
    batch = Batch.of(prefills=[(512, int(c)) for c in rng.integers(0, 2000, 6)],
                     decodes=rng.integers(100, 4000, 250).tolist())
    seconds = min(timeit.repeat(lambda: cost.batch_time(batch), number=200, repeat=5)) / 200
    assert seconds < 100e-6  # about 15-20 us measured on a 2-core machine


# ---- calibration -----------------------------------------------------------------------------------------

def synthetic_measurements(params: RooflineParams) -> list[LayerMeasurements]:
    """Layer times the roofline model itself predicts under ``params``, on two GPUs and two shardings."""
    tokens = np.unique(np.geomspace(1, 8192, 60).astype(np.int64))
    model = ModelSpec("synthetic", 1, 4096, 32, 8, 14336, 32000)
    result = []
    for gpu in ("a100-80gb", "a40"):
        for tp in (1, 4):
            blank = LayerMeasurements(gpu, model, get_gpu(gpu), tp, tokens, np.ones(len(tokens)))
            result.append(replace(blank, per_layer_ms=blank.predict_ms(params)))
    return result


def test_fit_recovers_known_params_from_synthetic_measurements():
    truth = RooflineParams(compute_efficiency=0.6, bandwidth_efficiency=0.9, kernel_launch_s=8e-6, token_tile=32,
                           overlap_exponent=3.0)
    fitted = fit_roofline_params(synthetic_measurements(truth), tile_candidates=(16, 32, 64))
    assert fitted.token_tile == 32
    for name in ("compute_efficiency", "bandwidth_efficiency", "kernel_launch_s", "overlap_exponent"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=1e-3), name


def test_missing_calibration_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="calibration data not found"):
        load_layer_measurements(tmp_path / "absent.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("device,model\na100,x\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        load_layer_measurements(wrong)


requires_calibration_data = pytest.mark.skipif(not default_calibration_path().is_file(),
                                               reason="../shared/calibration is absent")


@pytest.fixture(scope="module")
def measured():
    return load_layer_measurements(default_calibration_path())


@requires_calibration_data
def test_default_params_fit_the_measured_layers(measured):
    errors = absolute_percentage_errors(measured, RooflineParams())
    assert len(errors) == 14486
    assert np.median(errors) < 4.5  # 3.81 % measured with the calibrated defaults
    for device in ("a100", "a40"):
        on_device = absolute_percentage_errors([m for m in measured if m.device == device], RooflineParams())
        assert np.median(on_device) < 6.0  # A100 3.17 %, A40 4.97 % measured


@requires_calibration_data
def test_calibration_generalises_to_a_held_out_gpu(measured):
    results = leave_one_gpu_out(measured, tile_candidates=(64,))
    assert [device for device, _, _ in results] == ["a100", "a40"]
    for device, _, summary in results:
        assert summary.median_ape < 9.0, device  # A100 7.23 %, A40 6.93 % measured
