"""The agent evaluation path on the real InferMax-Tiny-v0 env: baselines and the optimal replay run through it
give the same objectives as directly on the simulator."""

import gymnasium as gym
import numpy as np
import pytest

import infermax_env  # noqa: F401
from agents.evaluation import (OptimumCache, as_action_fn, evaluate, evaluation_seeds, run_episode, run_scheduler,
                               workload_for_seed)
from baselines import make_scheduler
from baselines.policy import SchedulerPolicy
from infermax_env.metrics import objective_value

SEEDS = evaluation_seeds(4)


@pytest.fixture
def env():
    """The agent's default setting: the sequential mode can express every scheduler's decisions exactly."""
    return gym.make("InferMax-Tiny-v0", action_mode="sequential", oracle=True)


@pytest.mark.parametrize("name", ["vllm", "sarathi", "srpt"])
def test_baseline_through_the_agent_path_matches_its_direct_metrics(env, name):
    for seed in SEEDS[:2]:
        workload = workload_for_seed(env, seed)
        direct = run_scheduler(make_scheduler(name), workload, env)
        through_env = run_episode(env, as_action_fn(SchedulerPolicy(make_scheduler(name), env)), workload)
        for key in ("sum_ttlt", "total_gpu_time", "iterations", "evictions"):
            assert through_env[key] == pytest.approx(direct[key], rel=1e-12), (name, seed, key)


def test_evaluate_reports_a_baseline_policy_like_the_heuristic(env, tmp_path):
    policy = SchedulerPolicy(make_scheduler("sarathi"), env)
    report = evaluate(env, {"sarathi via env": policy}, SEEDS, heuristics=["vllm", "sarathi"])
    assert np.allclose(report.objectives["sarathi via env"], report.objectives["sarathi"], rtol=1e-12)
    assert np.allclose(report.gap_to_best_heuristic("sarathi"),
                       report.objectives["sarathi"] / np.minimum(report.objectives["vllm"],
                                                                 report.objectives["sarathi"]) - 1)


def test_callable_policies_are_accepted(env):
    workload = workload_for_seed(env, SEEDS[0])

    def first_allowed(obs):
        return int(np.flatnonzero(obs["action_mask"])[0])

    summary = run_episode(env, as_action_fn(first_allowed), workload)
    assert summary["finished"] == len(workload)


def test_optimal_replay_through_the_env_has_zero_gap(tmp_path):
    from baselines.optimal import solve_optimal

    env = gym.make("InferMax-Tiny-v0", action_mode="sequential", oracle=True)
    seed = next(s for s in evaluation_seeds(20) if len(workload_for_seed(env, s)) <= 5)
    workload = workload_for_seed(env, seed)
    sim = env.unwrapped.sim
    result = solve_optimal(workload, sim.cost_model, sim.config, objective="latency", time_limit=10, workers=1)
    replay = SchedulerPolicy(result.scheduler(), env)
    replayed = objective_value(run_episode(env, as_action_fn(replay), workload), "latency")
    cache = OptimumCache(tmp_path / "optima.json", solver=lambda *a, **k: result)
    report = evaluate(env, {"optimal replay": replay}, [seed], heuristics=["vllm"], optimum_cache=cache,
                      setting_name="tiny")
    assert replayed == pytest.approx(result.replayed_objective, rel=1e-12)
    assert report.gap_to_optimum("optimal replay")[0][0] == pytest.approx(0.0, abs=1e-12)
    assert report.gap_to_optimum("vllm")[0][0] >= -1e-12


def test_oracle_heuristics_are_skipped_where_output_lengths_are_hidden():
    from agents.evaluation import runnable_heuristics

    names = ["vllm", "srpt", "sagesched", "sort_output_noe", "vllm_cap"]
    hidden = gym.make("InferMax-Tiny-v0", oracle=False)
    assert runnable_heuristics(hidden, names) == (["vllm", "sagesched", "vllm_cap"], ["srpt", "sort_output_noe"])
    assert runnable_heuristics(gym.make("InferMax-Tiny-v0", oracle=True), names) == (names, [])
    # what runnable_heuristics keeps really runs there, what it skips really refuses
    workload = workload_for_seed(hidden, SEEDS[0])
    for name in ("vllm", "sagesched", "vllm_cap"):
        run_scheduler(make_scheduler(name), workload, hidden)
    with pytest.raises(Exception, match="oracle"):
        run_scheduler(make_scheduler("srpt"), workload, hidden)


def test_long_episodes_report_progress_per_env_step(env, capsys):
    workload = workload_for_seed(env, SEEDS[0])
    policy = as_action_fn(SchedulerPolicy(make_scheduler("vllm"), env))
    calls = []
    run_episode(env, policy, workload, on_step=lambda: calls.append(1))
    obs, _ = env.reset(options={"workload": workload})
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs, env))
        steps, done = steps + 1, terminated or truncated
    assert len(calls) == steps > len(workload)
    evaluate(env, {"vllm via env": SchedulerPolicy(make_scheduler("vllm"), env)}, SEEDS[:1], progress=True)
    assert "vllm via env (env steps)" in capsys.readouterr().err
