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


def run_dirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []


def tiny_budget(tmp_path: Path) -> list[str]:
    """Appended to a documented command: the same path with budgets small enough for a test."""
    return ["--timesteps", "256", "--eval-episodes", "2", "--validation-episodes", "1", "--eval-freq", "256",
            "--checkpoint-freq", "256", "--imitation-episodes", "2", "--heuristics", "vllm,sarathi",
            "--solver-time-limit", "1", "--optimum-cache", str(tmp_path / "optima.json"), "--no-progress",
            "--output-dir", str(tmp_path / "runs")]


@pytest.mark.parametrize("vec_env", ["dummy", pytest.param("subproc", marks=pytest.mark.slow)])  # subproc: +20 s
def test_a_multi_env_model_evaluates_and_its_eval_only_run_works(tmp_path, vec_env):
    budget = tiny_budget(tmp_path) + ["--no-optimum"]
    assert train.main(["--n-envs", "2", "--vec-env", vec_env] + budget) == 0
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert "agent" in (run_dir / "gap_table.md").read_text()
    assert train.main(["--eval-only", str(run_dir / "model.zip"), "--vec-env", vec_env] + budget) == 0
    evaluated = max(run_dirs(tmp_path / "runs"))
    assert "warm-started by imitating the per-instance best of srpt" in (evaluated / "gap_table.md").read_text()


def test_resume_uses_the_saved_models_algorithm_and_refuses_another(tmp_path, capsys):
    assert train.main(["--algo", "ppo"] + tiny_budget(tmp_path) + ["--no-optimum"]) == 0
    (first,) = run_dirs(tmp_path / "runs")
    assert train.main(["--resume", str(first / "model.zip")] + tiny_budget(tmp_path) + ["--no-optimum"]) == 0
    resumed = json.loads((max(run_dirs(tmp_path / "runs")) / "run_config.json").read_text())
    assert resumed["algo"] == "ppo" and resumed["env_kwargs"]["action_mode"] == "priority"
    capsys.readouterr()
    assert train.main(["--resume", str(first / "model.zip"), "--algo", "maskable_ppo"] + tiny_budget(tmp_path)) == 2
    assert "is a ppo model, not maskable_ppo" in capsys.readouterr().err
    assert len(run_dirs(tmp_path / "runs")) == 2


def test_a_mismatched_eval_only_names_the_real_kwargs_and_leaves_no_run_folder(tmp_path, capsys):
    assert train.main(["--algo", "ppo", "--no-optimum"] + tiny_budget(tmp_path)) == 0
    (run_dir,) = run_dirs(tmp_path / "runs")
    capsys.readouterr()
    assert train.main(["--eval-only", str(run_dir / "model.zip"), "--env-kwargs", '{"window": 7}',
                       "--output-dir", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "window" in err and "max_slots" not in err
    assert not run_dirs(tmp_path / "eval")


def test_the_objective_option_sets_the_training_reward_or_refuses_a_mismatch(capsys):
    plan = train.plan_run(train.parse_args(["--objective", "gpu_time", "--no-imitation"]))
    assert plan.objective == "gpu_time" and plan.env_kwargs["objective"] == "gpu_time"
    env = gym.make(plan.env_id, **plan.env_kwargs)
    assert env.unwrapped.config.objective == "gpu_time"  # the reward follows the reported objective
    with pytest.raises(ValueError, match="the reward would follow latency"):
        train.plan_run(train.parse_args(["--objective", "gpu_time", "--env-kwargs", '{"objective": "latency"}']))


def test_without_the_oracle_the_warm_start_imitates_non_oracle_teachers():
    from baselines import SCHEDULERS

    plan = train.plan_run(train.parse_args(["--env-kwargs", '{"oracle": false}', "--imitation-episodes", "2"]))
    assert plan.teachers and not any(SCHEDULERS[name].requires_oracle for name in plan.teachers)
    oracle_plan = train.plan_run(train.parse_args(["--imitation-episodes", "2"]))
    assert any(SCHEDULERS[name].requires_oracle for name in oracle_plan.teachers)


def test_teachers_the_action_mode_cannot_express_are_refused_before_training(tmp_path, capsys):
    # InferMax-v0's batches hold more than K = 64 requests: no teacher fits the default window
    assert train.main(["--env-id", "InferMax-v0", "--env-kwargs", '{"oracle": false}', "--no-optimum",
                       "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no warm-start teacher can act in this env" in err and '"window": 256' in err and "--no-imitation" in err
    assert not run_dirs(tmp_path)


def test_a_warm_start_too_large_for_memory_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "DEMONSTRATION_MEMORY_LIMIT", 10_000)
    assert train.main(["--imitation-episodes", "50", "--output-dir", str(tmp_path)]) == 2
    assert "GiB of demonstrations" in capsys.readouterr().err and not run_dirs(tmp_path)


def test_an_inexpressible_teacher_instance_falls_back_to_the_next_teacher():
    from agents.imitation import collect_demonstrations

    # with a 6-slot window: srpt's batches do not fit on instances 3 and 4 (vllm's do), nothing fits on 0
    env = gym.make("InferMax-Tiny-v0", action_mode="sequential", oracle=True, window=6)
    demos = collect_demonstrations(env, ["srpt", "vllm"], [3, 4, 0], "latency")
    assert demos.teacher_counts == {"srpt": 0, "vllm": 2} and demos.skipped_instances == 1
    assert demos.inexpressible["srpt"] >= 1 and len(demos) == len(demos.returns) > 0


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["maskable_ppo", "ppo", "qrdqn"])
@pytest.mark.parametrize("mode", ["select", "priority", "sequential"])
def test_every_algorithm_and_action_mode_trains_or_is_refused_before_training(tmp_path, capsys, algo, mode):
    code = train.main(["--algo", algo, "--env-kwargs", json.dumps({"action_mode": mode}), "--no-optimum"]
                      + tiny_budget(tmp_path))
    err = capsys.readouterr().err
    if code:  # refused: before any run folder, naming what to change
        assert code == 2 and not run_dirs(tmp_path / "runs"), err
        assert (algo == "qrdqn" and "Discrete" in err) or "Fixes: the sequential or select action mode" in err, err
    else:
        (run_dir,) = run_dirs(tmp_path / "runs")
        assert "agent" in (run_dir / "gap_table.md").read_text()


def documented_commands() -> list[list[str]]:
    """The ``python train.py ...`` lines of train.py's docstring and of README.md, as argument lists."""
    import shlex

    text = train.__doc__ + (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = []
    for line in text.splitlines():
        if line.strip().startswith("python train.py") or "&& python train.py" in line:
            command = line.split("python train.py", 1)[1].split("#", 1)[0]
            if shlex.split(command) not in commands:
                commands.append(shlex.split(command))
    return commands


@pytest.mark.slow
def test_every_documented_train_command_runs_with_tiny_budgets(tmp_path):
    commands = documented_commands()
    assert any("--eval-only" in c for c in commands) and any("InferMax-v0" in c for c in commands)
    trained = None
    for command in sorted(commands, key=lambda c: "--eval-only" in c):  # train something before evaluating it
        if "--eval-only" in command:
            command = [trained if "<timestamp>" in arg else arg for arg in command]
        before = set(run_dirs(tmp_path / "runs"))
        assert train.main(command + tiny_budget(tmp_path)) == 0, command
        (new,) = set(run_dirs(tmp_path / "runs")) - before
        if (new / "model.zip").is_file() and trained is None:
            trained = str(new / "model.zip")
