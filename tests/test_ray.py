"""Scale-out on a local single-node Ray: the Ray-parallel compare and optima equal the local run; RLlib trains
with two EnvRunners. Skipped without Ray (pip install -e '.[rllib]')."""

import gymnasium as gym
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[rllib]'")

from baselines.compare import RunSetup, SchedulerSpec, run_many  # noqa: E402
from infermax_env import LinearCostModel, SyntheticGenerator  # noqa: E402
from infermax_env.instances import tiny_setting  # noqa: E402
from infermax_env.instances import INFERMAX_ENGINE  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_compare_on_ray_equals_the_local_run(local_ray):
    workload = SyntheticGenerator(num_requests=120, rate=4.0, arrival="poisson", name="ray-test")(
        np.random.default_rng(0))
    setups = [RunSetup(workload.scale_rate(scale), LinearCostModel(), INFERMAX_ENGINE, label=f"x{scale:g}")
              for scale in (1.0, 2.0)]
    specs = [SchedulerSpec.parse(name) for name in ("vllm", "sarathi", "orca")]
    local = run_many(specs, setups, jobs=1, progress=False)
    remote = run_many(specs, setups, progress=False, ray="local")
    assert [(r.scheduler, r.config) for r in remote] == [(r.scheduler, r.config) for r in local]
    for a, b in zip(local, remote):
        assert a.summary == b.summary
        np.testing.assert_array_equal(a.ttlt, b.ttlt)


def test_optima_on_ray_equal_the_local_solves(local_ray):
    from baselines.optimal import solve_optimal
    from baselines.ray_pool import solve_optima

    setting = tiny_setting(num_requests=3)  # small enough to prove optimal in well under a second
    workloads = [setting.generator(np.random.default_rng(seed)) for seed in range(3)]
    remote = solve_optima(workloads, setting.cost_model, setting.engine, time_limit=20.0)
    for workload, result in zip(workloads, remote):
        local = solve_optimal(workload, setting.cost_model, setting.engine, time_limit=20.0, workers=1)
        assert result.status == local.status == "OPTIMAL"
        assert result.objective == pytest.approx(local.objective, rel=1e-9)


def test_agent_evaluation_on_ray_equals_the_local_one(local_ray, tmp_path):
    from sb3_contrib import MaskablePPO

    from agents.ray_evaluation import agent_episodes, agent_summaries

    model = MaskablePPO("MultiInputPolicy", gym.make("InferMax-Tiny-v0"), n_steps=64, batch_size=32, seed=0)
    model.learn(64)
    path = str(tmp_path / "agent.zip")
    model.save(path)
    seeds = [10_000 + i for i in range(5)]
    local = agent_episodes(path, "InferMax-Tiny-v0", {}, seeds, algo="maskable_ppo")
    remote = agent_summaries(path, "InferMax-Tiny-v0", {}, seeds, algo="maskable_ppo", seeds_per_task=2)
    assert len(remote) == 5 and remote == local
    assert all(summary["mean_ttlt"] > 0 for summary in remote)


def test_rllib_masked_ppo_trains_across_two_env_runners(local_ray):
    pytest.importorskip("ray.rllib", reason="RLlib is not installed: pip install -e '.[rllib]'")
    from infermax_env.rllib import masked_ppo_config

    algo = masked_ppo_config("InferMax-Tiny-v0", num_env_runners=2, train_batch_size=200, minibatch_size=100,
                             num_epochs=1, hidden=(32,)).build_algo()
    try:
        assert algo.env_runner_group.num_healthy_remote_workers() == 2
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 200
        assert np.isfinite(result["env_runners"]["episode_return_mean"])
    finally:
        algo.stop()


def test_ray_speed_benchmark_runs_and_matches():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "ray_speed.py"), "--requests", "100"],
                            capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same summaries: True" in result.stdout, result.stdout
