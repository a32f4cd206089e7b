"""The residual policy: zero correction is the base heuristic; the observation never reveals true lengths."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from agents.policies import SlotScoringPolicy
from agents.residual import (EXTRA_FEATURES, RESIDUAL_POLICY_KWARGS, ResidualEnv, correction_is_zero,
                             make_residual_env, residual_scheduler, zero_correction_head)
from baselines import make_scheduler
from infermax_env.simulator import Simulator
from infermax_env.workload import Workload

@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small policies on a shared 2-core machine: more threads only contend (10x slower measured)."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


def small_workload(seed: int, num_requests: int = 48) -> Workload:
    """A short InferMax-v0-style window (synthetic conv lengths, Poisson arrivals at 3x the trace rate so that
    memory contends within a few dozen requests)."""
    from infermax_env.envs.config import CONV_OUTPUT, CONV_PROMPT, CONV_TRACE_RATE
    from infermax_env.workload import SyntheticGenerator

    generator = SyntheticGenerator(num_requests=num_requests, prompt=CONV_PROMPT, output=CONV_OUTPUT,
                                   arrival="poisson", rate=3 * CONV_TRACE_RATE, name="test")
    return generator(np.random.default_rng(seed))


def run_residual(env: ResidualEnv, workload: Workload, action_fn) -> dict[str, float]:
    obs, _ = env.reset(options={"workload": workload})
    while True:
        obs, _, terminated, truncated, info = env.step(action_fn(obs))
        if terminated or truncated:
            return info["metrics"]


def heuristic_metrics(env: ResidualEnv, name: str, workload: Workload) -> dict[str, float]:
    cfg = env.unwrapped.config
    return dict(Simulator(workload, cfg.cost_model, cfg.engine, oracle=cfg.oracle).run(make_scheduler(name)).summary)


@pytest.mark.parametrize("base, action_mode", [("sagesched", "select"), ("sarathi", "sequential"),
                                               ("sort_prompt", "priority"), ("tuned", "select")])
def test_zero_correction_reproduces_the_base_heuristic(base, action_mode):
    env = make_residual_env("InferMax-v0", base, window=64, oracle=False, kv_capacity=20_000, action_mode=action_mode)
    for seed in range(2):
        workload = small_workload(seed)
        got = run_residual(env, workload, lambda obs: np.zeros(64, dtype=np.float32))
        assert got == pytest.approx(heuristic_metrics(env, base, workload), rel=1e-12)


def test_untrained_agent_is_the_base_heuristic_and_a_correction_changes_the_schedule():
    env = make_residual_env("InferMax-v0", "sagesched", window=64, oracle=False, kv_capacity=20_000)
    model = PPO(SlotScoringPolicy, env, policy_kwargs=RESIDUAL_POLICY_KWARGS, n_steps=64, batch_size=64, seed=0)
    zero_correction_head(model)
    assert correction_is_zero(model)
    workload = small_workload(3, num_requests=32)
    untrained = run_residual(env, workload, lambda obs: model.predict(obs, deterministic=True)[0])
    reference = heuristic_metrics(env, "sagesched", workload)
    assert untrained == pytest.approx(reference, rel=1e-12)
    rng = np.random.default_rng(0)
    perturbed = run_residual(env, workload, lambda obs: rng.uniform(-1, 1, 64).astype(np.float32))
    assert perturbed["sum_ttlt"] != pytest.approx(reference["sum_ttlt"], rel=1e-9)


def test_observation_never_reveals_unfinished_output_lengths():
    env = make_residual_env("InferMax-v0", "sagesched", window=64, oracle=False, kv_capacity=20_000)
    workload = small_workload(5)
    longer = dataclasses.replace(workload, output_len=workload.output_len + 97)

    def first_observations(w: Workload, steps: int = 5) -> list[dict[str, np.ndarray]]:
        obs, _ = env.reset(options={"workload": w})
        seen = [obs]
        for _ in range(steps):  # no request finishes in the first iterations (every output is >= 98 here)
            obs, *_ = env.step(np.zeros(64, dtype=np.float32))
            seen.append(obs)
        assert env.unwrapped.sim.num_done == 0
        return seen

    for a, b in zip(first_observations(workload), first_observations(longer)):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert env.observation_space["requests"].shape[1] == env.unwrapped.observation_space["requests"].shape[1] + len(
        EXTRA_FEATURES)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="ranking heuristic"):
        residual_scheduler(object())
    with pytest.raises(ValueError, match="unknown scheduler"):
        residual_scheduler("no_such_heuristic")
    env = make_residual_env("InferMax-Tiny-v0", "sort_prompt", window=12)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(12, np.nan, dtype=np.float32))


@pytest.mark.slow
def test_train_py_eval_only_rebuilds_the_residual_env(tmp_path, capsys):
    import train
    from agents.builders import attach_metadata
    from agents.train_residual import RESIDUAL_MAKE_ID, env_from_metadata, residual_env_kwargs

    env_kwargs = residual_env_kwargs("sagesched", 256, 2.0)
    model = PPO(SlotScoringPolicy, env_from_metadata(env_kwargs), policy_kwargs=RESIDUAL_POLICY_KWARGS, n_steps=64,
                batch_size=64, seed=0)
    zero_correction_head(model)
    attach_metadata(model, RESIDUAL_MAKE_ID, env_kwargs, "ppo")
    model.save(tmp_path / "model.zip")
    assert train.main(["--eval-only", str(tmp_path / "model.zip"), "--no-optimum", "--eval-episodes", "1",
                       "--heuristics", "sagesched", "--output-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    agent = next(line for line in table if "agent" in line)
    sagesched = next(line for line in table if "sagesched" in line)
    assert agent.split("|")[2] == sagesched.split("|")[2]  # same objective on the held-out window


@pytest.mark.parametrize("base", ["tuned", "sagesched"])
def test_reservation_control_at_zero_is_the_base_heuristic_and_moves_the_reservation(base):
    env = make_residual_env("InferMax-v0", base, window=16, control="reservation", oracle=False, kv_capacity=20_000)
    workload = small_workload(1)
    zero = run_residual(env, workload, lambda obs: np.zeros(1, dtype=np.float32))
    assert zero == pytest.approx(heuristic_metrics(env, base, workload), rel=1e-12)
    assert env.quantile(0.0) == env.base_quantile
    assert env.quantile(1.0) == pytest.approx(min(env.base_quantile + env.span, 0.99))
    shifted = run_residual(env, workload, lambda obs: np.ones(1, dtype=np.float32))
    assert shifted["sum_ttlt"] != pytest.approx(zero["sum_ttlt"], rel=1e-9)


def test_formula_control_at_zero_is_tuned_and_its_weights_move_the_schedule():
    env = make_residual_env("InferMax-v0", "tuned", window=16, control="formula", oracle=False, kv_capacity=20_000)
    assert env.action_space.shape == (4,)
    workload = small_workload(5)
    zero = run_residual(env, workload, lambda obs: np.zeros(4, dtype=np.float32))
    assert zero == pytest.approx(heuristic_metrics(env, "tuned", workload), rel=1e-12)
    for weight, action in (("w_age", [0.0, 0.0, 1.0, 0.0]), ("w_preempt", [0.0, 0.0, 0.0, 1.0])):
        shifted = run_residual(env, workload, lambda obs: np.array(action, dtype=np.float32))
        assert getattr(env.scheduler.order, weight) == pytest.approx(env.base_weights[weight]
                                                                     + env.WEIGHT_SPANS[weight])
        assert shifted["sum_ttlt"] != pytest.approx(zero["sum_ttlt"], rel=1e-9)


def test_untrained_reservation_agent_is_the_base_heuristic():
    from agents.residual import RESERVATION_POLICY_KWARGS

    env = make_residual_env("InferMax-v0", "tuned", window=16, control="reservation", oracle=False,
                            kv_capacity=20_000)
    model = PPO("MultiInputPolicy", env, policy_kwargs=RESERVATION_POLICY_KWARGS, n_steps=64, batch_size=64, seed=0)
    assert not correction_is_zero(model)
    zero_correction_head(model)
    assert correction_is_zero(model)
    workload = small_workload(2, num_requests=32)
    untrained = run_residual(env, workload, lambda obs: model.predict(obs, deterministic=True)[0])
    assert untrained == pytest.approx(heuristic_metrics(env, "tuned", workload), rel=1e-12)


def test_reservation_control_refuses_bad_input_by_name():
    with pytest.raises(ValueError, match="predicted-quantile reservation"):
        make_residual_env("InferMax-Tiny-v0", "vllm", window=4, control="reservation")
    with pytest.raises(ValueError, match="control must be one of"):
        make_residual_env("InferMax-Tiny-v0", "tuned", window=4, control="knobs")
    env = make_residual_env("InferMax-Tiny-v0", "tuned", window=4, control="reservation")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="1 finite number"):
        env.step(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="formula order"):
        make_residual_env("InferMax-Tiny-v0", "sagesched", window=4, control="formula")
