"""The "tuned" baseline: SageSched at neutral weights, stored weights load, CEM improves or keeps the start."""

from __future__ import annotations

import numpy as np
import pytest

from baselines import make_scheduler
from baselines.tuned import SAGESCHED_PARAMETERS, TunedScheduler, check_weights, stored_weights, tune
from infermax_env.envs.config import CONV_OUTPUT, CONV_PROMPT, CONV_TRACE_RATE, build_config
from infermax_env.simulator import Simulator
from infermax_env.workload import SyntheticGenerator


def windows(count: int, num_requests: int = 40):
    generator = SyntheticGenerator(num_requests=num_requests, prompt=CONV_PROMPT, output=CONV_OUTPUT,
                                   arrival="poisson", rate=3 * CONV_TRACE_RATE, name="tuned-test")
    return [generator(np.random.default_rng(seed)) for seed in range(count)]


def serve(scheduler, workload, config):
    return Simulator(workload, config.cost_model, config.engine, oracle=False).run(scheduler).summary


def test_neutral_weights_are_sagesched_and_stored_weights_run():
    config = build_config("default", kv_capacity=20_000)
    for workload in windows(2):
        assert serve(TunedScheduler(SAGESCHED_PARAMETERS), workload, config) == pytest.approx(
            serve(make_scheduler("sagesched"), workload, config), rel=1e-12)
    tuned = make_scheduler("tuned")
    assert tuned.weights == stored_weights()
    assert serve(tuned, windows(1)[0], config)["sum_ttlt"] > 0


def test_bad_weights_are_named():
    with pytest.raises(ValueError, match="missing"):
        check_weights({"w_kv": 1.0})
    with pytest.raises(ValueError, match="reserve_quantile"):
        check_weights({**SAGESCHED_PARAMETERS, "reserve_quantile": 1.5})
    with pytest.raises(ValueError, match="finite"):
        check_weights({**SAGESCHED_PARAMETERS, "w_age": float("nan")})


def test_cem_returns_weights_no_worse_than_sagesched_on_its_windows():
    config = build_config("default", kv_capacity=20_000)
    workloads = windows(2, num_requests=24)
    seen = []
    weights, cost = tune(workloads, config.engine, config.cost_model, iterations=2, population=3, elite=1, seed=0,
                         log=lambda line: None, on_best=lambda w, c, i: seen.append(c))
    assert cost <= 1.0 and len(seen) == 2 and seen[-1] == cost
    assert set(weights) == set(SAGESCHED_PARAMETERS)
