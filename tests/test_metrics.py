import json
import math

import numpy as np

from baselines import VLLMScheduler
from infermax_env import EngineConfig, LinearCostModel, Simulator, Workload, compute_metrics, objective_value
from infermax_env.plotting import save_schedule_plot


def small_run():
    rng = np.random.default_rng(1)
    n = 30
    w = Workload(np.cumsum(rng.exponential(0.1, n)), rng.integers(20, 200, n), rng.integers(1, 60, n))
    sim = Simulator(w, LinearCostModel(), EngineConfig(kv_capacity=1200, token_budget=512))
    return sim, sim.run(VLLMScheduler())


def test_metrics_definitions_and_slo():
    sim, m = small_run()
    r = m.requests
    assert np.allclose(r["ttlt"], r["finish"] - r["arrival"]) and np.allclose(r["ttft"], r["first_token"] - r["arrival"])
    multi = r["output_len"] > 1
    assert np.allclose(r["tpot"][multi], (r["finish"] - r["first_token"])[multi] / (r["output_len"][multi] - 1))
    assert math.isclose(m["mean_ttlt"], r["ttlt"].mean()) and m["sum_ttlt"] == objective_value(m, "latency")
    assert m["total_gpu_time"] == objective_value(m, "gpu_time")
    assert math.isclose(m["total_gpu_time"], sum(sim.log.batch_time), rel_tol=1e-12)
    assert 0 < m["mean_kv_utilization"] <= m["peak_kv_utilization"] <= 1
    strict = compute_metrics(sim, slo_ttft=0.0)["slo_attainment"]
    loose = compute_metrics(sim, slo_ttft=1e9, slo_tpot=1e9)["slo_attainment"]
    assert strict == 0.0 and loose == 1.0


def test_exports(tmp_path):
    _, m = small_run()
    data = json.loads(m.to_json(tmp_path / "m.json", per_request=True))
    assert data["summary"]["finished"] == 30 and len(data["requests"]["ttlt"]) == 30
    m.to_csv(tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert len(lines) == 31 and lines[0].startswith("request_id,arrival")


def test_schedule_plot_is_written(tmp_path):
    sim, _ = small_run()
    path = save_schedule_plot(sim, tmp_path / "schedule.png")
    assert path.stat().st_size > 10_000
