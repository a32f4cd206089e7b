"""Train the residual agent (:mod:`agents.residual`) on InferMax-v0 with :class:`~agents.group_rollouts.GroupPPO`.

    python -m agents.train_residual --seed 0 --minutes 60 --output-dir runs/residual-0
    python -m agents.train_residual --resume runs/residual-0/checkpoint.zip --minutes 30 --output-dir runs/residual-0
    python -m agents.train_residual --base sagesched --control ranking --window 256 --output-dir runs/ranking-0

The default is the shipped agent's recipe: the reservation residual on "tuned" (the agent sets the admission
reservation quantile each iteration); ``--control ranking`` corrects every request's rank instead.

The agent starts as the base heuristic (zero correction). Every ``--validate-every`` updates it is scored on
validation windows (seeds ``15,000,000 + i``, disjoint from training and from the evaluation seeds
``10,000,000 + i``) by the mean of (its sum of TTLT / the base heuristic's) over the windows; ``best_model.zip``
is only replaced by a policy that scores below every earlier one, and the zero-correction policy scores
exactly 1.0, so a best model that was never replaced *is* the base heuristic. ``checkpoint.zip`` (and
``progress.json``) are written after every update, so ``--resume`` continues from the last one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from .builders import attach_metadata
from .curriculum import Curriculum
from .group_rollouts import GroupPPO
from .policies import SlotScoringPolicy
from .residual import (CONTROLS, RESERVATION_POLICY_KWARGS, RESIDUAL_ENV_ID, RESIDUAL_POLICY_KWARGS, base_metrics,
                       make_residual_env, zero_correction_head)

ENV_ID = "InferMax-v0"
RESIDUAL_MAKE_ID = f"agents.residual:{RESIDUAL_ENV_ID}"
VALIDATION_SEED_OFFSET = 15_000_000
HYPERPARAMETERS = {"learning_rate": 1e-4, "n_steps": 1024, "batch_size": 512, "n_epochs": 4, "clip_range": 0.2,
                   "ent_coef": 0.0, "vf_coef": 0.0, "max_grad_norm": 0.5, "gamma": 1.0}
"""PPO settings; ``vf_coef`` 0 because the group baseline replaces the value function in the advantages."""


def residual_env_kwargs(base: str, window: int, correction_scale: float, control: str = "ranking",
                        span: float = 0.15) -> dict[str, Any]:
    """The kwargs of ``gym.make(RESIDUAL_MAKE_ID, ...)`` a residual agent is trained in (saved in its metadata,
    so train.py's ``--eval-only`` rebuilds the env)."""
    kwargs = {"base": base, "window": window, "correction_scale": correction_scale, "oracle": False}
    if control != "ranking":
        kwargs.update(control=control, span=span)
    return kwargs


def residual_policy(control: str) -> tuple[Any, dict[str, Any]]:
    """The policy (class or SB3 name) and its kwargs for a residual agent with ``control``: a slot-scoring policy
    for per-request ranking corrections, a small MLP on the global features for the reservation."""
    if control == "ranking":
        return SlotScoringPolicy, RESIDUAL_POLICY_KWARGS
    if control in ("reservation", "formula"):
        return "MultiInputPolicy", RESERVATION_POLICY_KWARGS
    raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")


def env_from_metadata(env_kwargs: dict[str, Any]) -> gym.Wrapper:
    """The residual env (:func:`~agents.residual.make_residual_env`) a residual agent's saved ``env_kwargs``
    describe."""
    return make_residual_env(ENV_ID, **env_kwargs)


def validation_windows(count: int, rate: float = 1.0, num_requests: int = 256, offset: int = VALIDATION_SEED_OFFSET):
    """Windows of the conv trace drawn with seeds ``offset + i`` (as ``env.reset(seed=...)`` would at 1x)."""
    from infermax_env.envs.config import conv_workload_generator

    generator, _ = conv_workload_generator(num_requests, rate)
    return [generator(np.random.default_rng(offset + i)) for i in range(count)]


def relative_score(model, env: gym.Wrapper, workloads, references: list[float]) -> float:
    """Mean over ``workloads`` of the deterministic policy's sum of TTLT over ``references``."""
    ratios = []
    for workload, reference in zip(workloads, references):
        obs, _ = env.reset(options={"workload": workload})
        while True:
            obs, _, terminated, truncated, info = env.step(model.predict(obs, deterministic=True)[0])
            if terminated or truncated:
                break
        ratios.append(info["metrics"]["sum_ttlt"] / reference)
    return float(np.mean(ratios))


class Supervisor(BaseCallback):
    """Checkpoints after every update, validates every ``validate_every`` updates, and stops training after the
    first update that ends past the wall-clock ``deadline``."""

    def __init__(self, run_dir: Path, env: gym.Wrapper, workloads, references, validate_every: int,
                 deadline: float, state: dict[str, Any]):
        super().__init__()
        self.run_dir, self.env, self.workloads, self.references = run_dir, env, workloads, references
        self.validate_every, self.deadline, self.state = validate_every, deadline, state
        self.stop = False

    def _on_step(self) -> bool:
        return not self.stop

    def _on_rollout_end(self) -> None:
        state, model = self.state, self.model
        state["updates"] += 1
        if state["updates"] % self.validate_every == 0:
            validation_started = time.time()
            score = relative_score(model, self.env, self.workloads, self.references)
            state["validation_s"] = state.get("validation_s", 0.0) + time.time() - validation_started
            state["validation"].append({"updates": state["updates"], "steps": model.num_timesteps, "score": score,
                                        "wall_s": round(time.time() - state["started"], 1)})
            improved = score < state["best_score"]
            if improved:
                state["best_score"] = score
                model.save(self.run_dir / "best_model.zip")
            log(self.run_dir, f"update {state['updates']} steps {model.num_timesteps}: validation sum-TTLT ratio "
                              f"to the base {score:.4f}{' (new best)' if improved else ''}")
        model.save(self.run_dir / "checkpoint.zip")
        state["steps"] = model.num_timesteps
        state["windows_drawn"] = model.windows_drawn
        (self.run_dir / "progress.json").write_text(json.dumps(state, indent=2))
        self.stop = time.time() >= self.deadline

    def _on_training_end(self) -> None:
        self.state["steps"] = self.model.num_timesteps


def log(run_dir: Path, line: str) -> None:
    stamped = f"{time.strftime('%H:%M:%S')} {line}"
    print(stamped, flush=True)
    with open(run_dir / "train.log", "a") as handle:
        handle.write(stamped + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--base", default="tuned", help="the base heuristic (baselines.SCHEDULERS name)")
    parser.add_argument("--seed", type=int, default=0, help="policy init and training-window stream")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    parser.add_argument("--timesteps", type=int, default=10_000_000, help="agent-step budget")
    parser.add_argument("--group-size", type=int, default=4, help="rollouts of the same window per update")
    parser.add_argument("--window", type=int, default=32,
                        help="K: the env's slots (ranking control: the slots the agent sees and corrects)")
    parser.add_argument("--correction-scale", type=float, default=2.0)
    parser.add_argument("--control", choices=CONTROLS, default="reservation",
                        help="correct every request's rank, set the admission reservation each iteration, or set the "
                        "reservation and tuned's formula weights each iteration")
    parser.add_argument("--span", type=float, default=0.15,
                        help="reservation control: an action of +-1 moves the base quantile by this much")
    parser.add_argument("--validation-windows", type=int, default=6)
    parser.add_argument("--validate-every", type=int, default=5, help="updates between validation passes")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--resume", default=None, help="a checkpoint.zip of an earlier run to continue")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--export-to", default=None, help="copy the run's best_model.zip and a config.json "
                        "(env, env version, training record) to this folder instead of training")
    args = parser.parse_args(argv)
    for name in ("group_size", "window", "validation_windows", "validate_every", "timesteps", "torch_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    return args


def export(run_dir: Path, destination: Path) -> None:
    """Ship a run's best model with what reproduces its evaluation: its env id and kwargs, the infermax-env
    version and git commit it was trained with, and its training record (progress.json)."""
    import shutil
    import subprocess
    from importlib.metadata import version

    from .builders import saved_metadata

    best = run_dir / "best_model.zip"
    record = json.loads((run_dir / "progress.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, destination / "best_model.zip")
    config = {"metadata": saved_metadata(best), "infermax_env_version": version("infermax_env"),
              "git_commit_at_export": commit, "source_run": str(run_dir),
              "selection": "best_model.zip: lowest validation ratio (sum of TTLT / the base heuristic's) among "
                           "the validation passes, the zero-correction start counting as exactly 1.0",
              "training": {k: v for k, v in record.items() if k != "started"}}
    (destination / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    th.set_num_threads(args.torch_threads)
    run_dir = Path(args.output_dir)
    if args.export_to:
        export(run_dir, Path(args.export_to))
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    env_kwargs = residual_env_kwargs(args.base, args.window, args.correction_scale, args.control, args.span)

    def factory() -> gym.Wrapper:
        return env_from_metadata(env_kwargs)

    started = time.time()
    budget = {"steps": args.timesteps, "seconds": 60 * args.minutes}
    progress_path = run_dir / "progress.json"
    if args.resume:
        state = json.loads(progress_path.read_text()) if progress_path.is_file() else None
        model = GroupPPO.load(args.resume, env=DummyVecEnv([factory]), device="cpu")
        model.env_factory = factory
        if state is None:
            raise FileNotFoundError(f"--resume needs {progress_path} beside the run's checkpoint")
        state["started"] = started - state.get("trained_s", 0.0)
    else:
        policy, policy_kwargs = residual_policy(args.control)
        model = GroupPPO(policy, DummyVecEnv([factory]), env_factory=factory, group_size=args.group_size,
                         curriculum=Curriculum(), window_seed=args.seed, policy_kwargs=policy_kwargs,
                         seed=args.seed, device="cpu", **HYPERPARAMETERS)
        zero_correction_head(model)
        state = {"updates": 0, "steps": 0, "best_score": 1.0, "validation": [], "started": started,
                 "args": {k: v for k, v in vars(args).items() if k != "resume"}}
    model.progress_fn = lambda: max(model.num_timesteps / budget["steps"],
                                    (time.time() - state["started"]) / budget["seconds"])
    attach_metadata(model, RESIDUAL_MAKE_ID, env_kwargs, "ppo")
    if not (run_dir / "best_model.zip").is_file():
        model.save(run_dir / "best_model.zip")  # the zero-correction policy: the base heuristic (score 1.0)
    validation_env = factory()
    workloads = validation_windows(args.validation_windows)
    references = [base_metrics(validation_env, args.base, w)["sum_ttlt"] for w in workloads]
    log(run_dir, f"training {args.base} residual, seed {args.seed}, group {args.group_size}, budget "
                 f"{args.minutes} min / {args.timesteps} steps; {len(workloads)} validation windows")
    deadline = time.time() + 60 * args.minutes  # the budget counts training and validation, not this setup
    supervisor = Supervisor(run_dir, validation_env, workloads, references, args.validate_every, deadline, state)
    learn_started = time.time()
    state["steps_at_start"] = model.num_timesteps
    validation_before = state.get("validation_s", 0.0)
    model.learn(total_timesteps=args.timesteps, callback=supervisor, reset_num_timesteps=not args.resume)
    wall = time.time() - learn_started
    state["trained_s"] = time.time() - state["started"]
    steps = model.num_timesteps - (state.get("steps_at_start") or 0)
    state["steps_per_second_this_session"] = steps / wall
    training_wall = max(wall - (state.get("validation_s", 0.0) - validation_before), 1e-9)
    state["training_steps_per_second_this_session"] = steps / training_wall
    model.save(run_dir / "checkpoint.zip")
    progress_path.write_text(json.dumps(state, indent=2))
    log(run_dir, f"done: {model.num_timesteps} agent steps, {state['updates']} updates, best validation ratio "
                 f"{state['best_score']:.4f}, {wall:.0f} s this session, "
                 f"{state['steps_per_second_this_session']:.1f} agent steps/s with validation, "
                 f"{state['training_steps_per_second_this_session']:.1f} without (rollouts + PPO updates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
