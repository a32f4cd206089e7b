"""Group (input-dependent) baseline PPO and the window curriculum."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.curriculum import Curriculum
from agents.group_rollouts import GroupPPO, group_advantages, returns_to_go
from agents.policies import SlotScoringPolicy
from agents.residual import RESIDUAL_POLICY_KWARGS, make_residual_env


def test_returns_to_go_and_leave_one_out_baseline():
    np.testing.assert_allclose(returns_to_go(np.array([-1.0, -2.0, -3.0])), [-6.0, -5.0, -3.0])
    rewards = [np.array([-1.0, -2.0, -3.0]), np.array([-4.0, -4.0])]
    times = [np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.5])]
    advantages, to_go = group_advantages(rewards, times)
    # rollout 0 at t=0, 1, 2 sees rollout 1's return-to-go from its first step at or after t: -8, -4, 0 (finished)
    np.testing.assert_allclose(advantages[0], [-6.0 + 8.0, -5.0 + 4.0, -3.0 - 0.0])
    # rollout 1 at t=0, 1.5 sees rollout 0's from t=0 (-6) and from t=2 (-3)
    np.testing.assert_allclose(advantages[1], [-8.0 + 6.0, -4.0 + 3.0])
    np.testing.assert_allclose(to_go[1], [-8.0, -4.0])
    single, _ = group_advantages([np.array([-1.0, -1.0])], [np.array([0.0, 1.0])])
    np.testing.assert_allclose(single[0], [-2.0, -1.0])
    with pytest.raises(ValueError, match="equal lengths"):
        group_advantages([np.array([1.0])], [np.array([0.0, 1.0])])


def test_curriculum_grows_the_window_and_draws_training_windows_only():
    curriculum = Curriculum(min_requests=32, max_requests=256, ramp_fraction=0.5)
    assert [curriculum.num_requests(p) for p in (0.0, 0.2, 0.4, 0.5, 1.0)] == [32, 64, 128, 256, 256]
    a, b = curriculum.draw(0.0, 7), curriculum.draw(0.0, 7)
    np.testing.assert_array_equal(a.arrival, b.arrival)
    assert len(a) == 32 and len(curriculum.draw(1.0, 8)) == 256
    with pytest.raises(ValueError, match="disjoint from evaluation"):
        curriculum.draw(0.0, 10_000_000)
    with pytest.raises(ValueError, match="min_requests"):
        Curriculum(min_requests=64, max_requests=32)


def test_group_ppo_updates_on_groups_of_the_same_window():
    th.set_num_threads(1)

    def factory():
        return make_residual_env("InferMax-v0", "sagesched", window=32, oracle=False)

    model = GroupPPO(SlotScoringPolicy, DummyVecEnv([factory]), env_factory=factory, group_size=2,
                     curriculum=Curriculum(min_requests=16, max_requests=16), window_seed=3,
                     policy_kwargs=RESIDUAL_POLICY_KWARGS, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=1)
    buffer = model.rollout_buffer
    assert model.num_timesteps == buffer.buffer_size == len(buffer.advantages)
    assert model.windows_drawn == 1
    # both copies served the same 16 requests
    sims = [env.unwrapped.sim for env in model.group_envs]
    np.testing.assert_array_equal(sims[0].arrival, sims[1].arrival)
    assert all(sim.done for sim in sims)
    assert np.isfinite(buffer.advantages).all()
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("control", ["ranking", "reservation"])
def test_train_residual_checkpoints_resumes_and_exports(tmp_path, control):
    import json

    from agents.builders import saved_metadata
    from agents.train_residual import main

    run = tmp_path / "run"
    common = ["--group-size", "1", "--validation-windows", "1", "--validate-every", "1", "--output-dir", str(run),
              "--base", "tuned", "--control", control]
    assert main(["--minutes", "0.05", *common]) == 0
    first = json.loads((run / "progress.json").read_text())
    assert first["updates"] >= 1 and first["validation"] and (run / "best_model.zip").is_file()
    assert main(["--minutes", "0.05", "--resume", str(run / "checkpoint.zip"), *common]) == 0
    assert json.loads((run / "progress.json").read_text())["steps"] > first["steps"]
    assert main(["--output-dir", str(run), "--export-to", str(tmp_path / "shipped")]) == 0
    shipped = json.loads((tmp_path / "shipped" / "config.json").read_text())
    assert shipped["metadata"] == saved_metadata(tmp_path / "shipped" / "best_model.zip")
    assert shipped["metadata"]["env_id"] == "agents.residual:InferMaxResidual-v0"
    assert shipped["metadata"]["env_kwargs"].get("control", "ranking") == control
