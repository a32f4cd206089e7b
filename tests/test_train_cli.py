"""train.py: argument validation, a short training run that saves a model that loads and acts, eval-only."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import train
from agents.builders import ObservationSpaceMismatchError, load_agent
from agents.evaluation import as_action_fn


def test_unknown_env_id_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--env-id", "InferMax-Nope-v0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown env id 'InferMax-Nope-v0'" in err and "InferMax-Tiny-v0" in err


def test_unknown_algorithm_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--algo", "sac"])
    assert "invalid choice: 'sac'" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object")])
def test_bad_env_kwargs_json_is_a_clear_error(capsys, text, message):
    with pytest.raises(SystemExit):
        train.parse_args(["--env-kwargs", text])
    assert message in capsys.readouterr().err


def test_unknown_env_kwargs_are_named():
    with pytest.raises(ValueError, match="unknown env kwargs for InferMax-Tiny-v0: colour, speed"):
        train.check_env_kwargs("InferMax-Tiny-v0", {"colour": 1, "speed": 2})


def test_rejected_env_kwarg_values_are_reported():
    with pytest.raises(ValueError, match="bad env kwargs.*action_mode"):
        train.check_env_kwargs("InferMax-Tiny-v0", {"action_mode": "telepathy"})


def test_unknown_heuristics_and_bad_kwargs_stop_before_anything_runs(tmp_path, capsys):
    assert train.main(["--heuristics", "vllm,nope", "--output-dir", str(tmp_path)]) == 2
    assert "unknown heuristics ['nope']" in capsys.readouterr().err
    assert train.main(["--env-kwargs", '{"colour": 1}', "--output-dir", str(tmp_path)]) == 2
    assert "unknown env kwargs for InferMax-Tiny-v0: colour" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_non_positive_counts_are_rejected(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--timesteps", "0"])
    assert "--timesteps must be >= 1" in capsys.readouterr().err


def quick_args(tmp_path: Path) -> list[str]:
    return ["--timesteps", "1024", "--n-envs", "1", "--eval-episodes", "2", "--validation-episodes", "2",
            "--eval-freq", "512", "--checkpoint-freq", "512", "--no-optimum", "--heuristics", "vllm",
            "--imitation-episodes", "3", "--no-progress", "--output-dir", str(tmp_path)]


def test_short_training_run_saves_a_model_that_loads_and_acts(tmp_path):
    assert train.main(quick_args(tmp_path)) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for name in ("model.zip", "best_model.zip", "gap_table.csv", "gap_table.md", "gap_plot.png",
                 "learning_curve.png", "run_config.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("*.zip")) and list((run_dir / "tensorboard").iterdir())
    config = json.loads((run_dir / "run_config.json").read_text())
    env = gym.make(config["env_id"], **config["env_kwargs"])
    model = load_agent(run_dir / "model.zip", env)
    obs, _ = env.reset(seed=1)
    action = as_action_fn(model)(obs, env)
    assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))

    # evaluation only, of the saved model, with its env rebuilt from the model's metadata
    assert train.main(["--eval-only", str(run_dir / "model.zip"), "--eval-episodes", "2", "--no-optimum",
                       "--heuristics", "vllm", "--no-progress", "--output-dir", str(tmp_path / "eval")]) == 0
    (eval_dir,) = list((tmp_path / "eval").iterdir())
    assert "agent" in (eval_dir / "gap_table.md").read_text()

    # a model refuses an env whose observation space differs (another window K)
    other = gym.make(config["env_id"], **{**config["env_kwargs"], "window": 7})
    with pytest.raises(ObservationSpaceMismatchError, match=r"requests: \(12, .*requests: \(7, "):
        load_agent(run_dir / "model.zip", other)
