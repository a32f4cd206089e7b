"""Fixed max-length no-eviction schedulers, INFERMAX's offline batches and trace preprocessing, and the signs
of the preemption findings on small offline batches."""

from __future__ import annotations

import numpy as np
import pytest

from baselines import SCHEDULERS, ReservationExceededError, make_scheduler
from infermax_env import EngineConfig, LinearCostModel, Simulator, Workload, WorkloadError
from infermax_env.instances import TINY_ENGINE, tiny_setting
from infermax_env.offline import OfflineBatch, cap_total_length, infermax_trace
from infermax_env.workload import default_trace_dir

COST = LinearCostModel()
CAPPED = ("vllm_cap", "sarathi_cap")


def run(name: str, workload: Workload, config: EngineConfig = TINY_ENGINE, **kwargs) -> Simulator:
    sim = Simulator(workload, COST, config, oracle=False)
    sim.run(make_scheduler(name, **kwargs))
    return sim


def assert_served_without_eviction(sim: Simulator) -> None:
    assert sim.done and sim.finished.all()
    np.testing.assert_array_equal(sim.generated, sim.output_len)
    assert int(sim.num_preemptions.sum()) == 0 and int(sim.recomputed_tokens.sum()) == 0
    assert max(sim.log.kv_blocks) <= sim.config.num_blocks


# ---- fixed max-length reservations ------------------------------------------------------------------
@pytest.mark.parametrize("name", CAPPED)
@pytest.mark.parametrize("cap", [{"max_tokens": 8}, {"max_tokens": 30}, {"max_model_len": 24}, {}])
def test_capped_schedulers_never_evict_and_finish(name, cap):
    for seed in range(6):
        workload = tiny_setting().sample(seed)
        assert_served_without_eviction(run(name, workload, **cap))


@pytest.mark.parametrize("name", CAPPED)
def test_capped_reservation_limits_concurrency(name):
    """Four requests of prompt 10, output 12 (final KV 21 each) in M = 48: a 12-token cap reserves 21 each, so at
    most two are resident at once; a 2,048-token cap reserves all of M, so they run one at a time."""
    workload = Workload.from_lists([10] * 4, [12] * 4)
    two = run(name, workload, max_tokens=12)
    one = run(name, workload, max_tokens=2048)
    assert_served_without_eviction(two)
    assert_served_without_eviction(one)
    assert max(two.log.kv_blocks) > 21 and max(one.log.kv_blocks) <= 21
    assert one.total_batch_time > two.total_batch_time


@pytest.mark.parametrize("name", CAPPED)
def test_capped_scheduler_refuses_to_evict(name):
    """Outputs longer than the cap: once memory runs out the run stops with a clear error, not an eviction."""
    workload = Workload.from_lists([10] * 4, [12] * 4)
    with pytest.raises(ReservationExceededError, match=r"max_tokens=2\).*outgrew its reservation"):
        run(name, workload, max_tokens=2)
    with pytest.raises(ReservationExceededError, match="prompt of 30 tokens, longer than max_model_len=20"):
        run(name, Workload.from_lists([5, 30], [2, 2]), max_model_len=20)


def test_capped_scheduler_arguments_are_checked():
    for kwargs, message in (({"max_tokens": 0}, "max_tokens must be a positive integer"),
                            ({"max_model_len": 2.5}, "max_model_len must be a positive integer"),
                            ({"max_tokens": 8, "max_model_len": 64}, "exactly one of max_tokens and max_model_len")):
        with pytest.raises(ValueError, match=message):
            make_scheduler("vllm_cap", **kwargs)
    assert not SCHEDULERS["vllm_cap"].requires_oracle and SCHEDULERS["vllm_noe"].requires_oracle


def test_sarathi_512_preset():
    scheduler = make_scheduler("sarathi_512")
    assert scheduler.chunk_size == 512 and scheduler.name == "sarathi_512"
    assert make_scheduler("sarathi_512", chunk_size=64).chunk_size == 64
    workload = OfflineBatch.uniform(1500, 4, 3)(np.random.default_rng(0))
    sim = Simulator(workload, COST, EngineConfig(kv_capacity=10_000, token_budget=16_384))
    sim.run(scheduler)
    assert max(sim.log.tokens) <= 512 and sim.finished.all()


# ---- offline batches and trace preprocessing ---------------------------------------------------------
def test_offline_batch_and_mixture():
    batch = OfflineBatch.uniform(128, 512, 16)(np.random.default_rng(0))
    assert batch.name == "offline-I128-O512-B16" and len(batch) == 16
    assert (batch.arrival == 0).all() and (batch.prompt_len == 128).all() and (batch.output_len == 512).all()
    mixture = OfflineBatch(((8, 32, 5), (100, 4, 3)))
    a, b = mixture(np.random.default_rng(1)), mixture(np.random.default_rng(1))
    np.testing.assert_array_equal(a.prompt_len, b.prompt_len)
    assert mixture.num_requests == 8 and sorted(a.prompt_len.tolist()) == [8] * 5 + [100] * 3
    assert ((a.prompt_len == 8) == (a.output_len == 32)).all()
    ordered = OfflineBatch(((8, 32, 5), (100, 4, 3)), shuffle=False)(np.random.default_rng(1))
    assert ordered.prompt_len.tolist() == [8] * 5 + [100] * 3
    for groups in ((), ((8, 0, 3),), ((8, 4),), ((8, 4, True),)):
        with pytest.raises(WorkloadError, match="OfflineBatch"):
            OfflineBatch(groups)


def test_cap_total_length():
    workload = Workload.from_lists([100, 3000, 4000, 10, 5000], [50, 3000, 500, 9000, 1])
    capped = cap_total_length(workload, 4096)
    total = capped.prompt_len + capped.output_len
    assert (total <= 4096).all() and (capped.prompt_len >= 1).all() and (capped.output_len >= 1).all()
    assert capped.prompt_len[0] == 100 and capped.output_len[0] == 50  # under the cap: untouched
    assert capped.prompt_len[1] == 2048 and capped.output_len[1] == 2048  # cut in proportion
    assert capped.output_len[4] == 1 and capped.prompt_len[4] == 4095
    assert workload.prompt_len[1] == 3000  # the input is not modified
    with pytest.raises(WorkloadError, match="max_total must be an integer >= 2"):
        cap_total_length(workload, 1)


@pytest.mark.skipif(default_trace_dir() is None, reason="needs ../shared/traces")
def test_infermax_trace_preprocessing():
    raw = Workload.from_csv(default_trace_dir() / "azure_conv_2023.csv")
    trace = infermax_trace("conv")
    assert len(trace) == len(raw) - 1 and trace.arrival[0] == 0
    assert (trace.prompt_len + trace.output_len).max() <= 4096
    np.testing.assert_allclose(trace.arrival, raw.arrival[1:] - raw.arrival[1])
    plain = infermax_trace("conv", max_total=None, shuffle_seed=None)
    np.testing.assert_array_equal(plain.prompt_len, raw.prompt_len[1:])


# ---- the sign of preemption on offline batches (INFERMAX's v1/v2 setting, reduced) ------------------
def gpu_change(prompt: int, output: int, count: int, capacity: int, rival: str, **kwargs) -> float:
    workload = OfflineBatch.uniform(prompt, output, count)(np.random.default_rng(0))
    config = EngineConfig(kv_capacity=capacity, token_budget=16_384)
    times = {}
    for name, extra in (("vllm", {}), (rival, kwargs)):
        sim = Simulator(workload, COST, config)
        sim.run(make_scheduler(name, **extra))
        times[name] = sim.total_batch_time
    return times["vllm"] / times[rival] - 1


def test_preemption_pays_for_long_outputs_and_hurts_for_short_ones():
    """Long outputs: the exact reservation keeps KV idle for the whole output, preemption fills it (INFERMAX's
    saving); short prompts and outputs in the same M: vLLM evicts and recomputes, the reservation wastes little."""
    assert gpu_change(16, 64, 64, 512, "vllm_noe") < -0.15
    assert gpu_change(8, 8, 256, 512, "vllm_noe") > 0.15
    assert gpu_change(16, 64, 64, 512, "vllm_cap", max_tokens=128) < gpu_change(16, 64, 64, 512, "vllm_noe")


# ---- the findings benchmark's bookkeeping ------------------------------------------------------------
def load_benchmark():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "paper_findings.py"
    spec = importlib.util.spec_from_file_location("paper_findings", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_findings_runs_resume_and_report(tmp_path):
    """One phase-diagram cell run through the checkpoint, resumed without rerunning, and reported."""
    import argparse

    findings = load_benchmark()
    cases = findings.preemption_cases(32, 32, 4096, "phase", batch=128)
    checkpoint = findings.Checkpoint(tmp_path / "phase.json")
    findings.run_cases(cases, checkpoint, jobs=1, desc="test")
    stored = findings.Checkpoint(tmp_path / "phase.json").rows
    assert set(stored) == {case.key for case in cases} and stored["phase|I32|O32|M4096|vllm"]["evictions"] > 0
    checkpoint.rows["phase|I32|O32|M4096|vllm"]["total_gpu_time"] = 1e9  # a resumed run keeps stored rows
    findings.run_cases(cases, checkpoint, jobs=1, desc="test")
    assert checkpoint.rows["phase|I32|O32|M4096|vllm"]["total_gpu_time"] == 1e9
    checkpoint.rows = stored
    checkpoint.save()
    exact = findings.change(stored, "phase|I32|O32|M4096", "vllm_noe")
    assert exact > 0.15  # short requests: recomputation costs more than the exact reservation wastes
    args = argparse.Namespace(out=tmp_path, docs=tmp_path / "docs", grid="small", window=None)
    findings.report(args)
    text = (tmp_path / "docs" / "findings.md").read_text()
    assert f"| I=32 | {exact:+.1%} / " in text and (tmp_path / "docs" / "findings_phase.png").exists()


def test_infermax_offline_setting():
    from infermax_env.instances import infermax_offline_setting

    setting = infermax_offline_setting(32, 16, 8, kv_capacity=256)
    workload = setting.sample(0)
    assert len(workload) == 8 and (workload.arrival == 0).all() and (workload.output_len == 16).all()
    assert setting.engine.kv_capacity == 256 and setting.engine.token_budget == 16_384
