"""Train an SB3 agent on an InferMax env, then evaluate it against every heuristic and the optimum.

    python train.py                                   # MaskablePPO on InferMax-Tiny-v0, a few minutes on a CPU
    python train.py --algo ppo --timesteps 200000 --n-envs 4
    python train.py --objective gpu_time --env-kwargs '{"oracle": false}'
    python train.py --env-id InferMax-v0 --algo ppo --env-kwargs '{"oracle": false}' --no-optimum
    python train.py --eval-only runs/<timestamp>/model.zip --eval-episodes 100

``--objective`` sets both the env's reward and the reported objective. With ``oracle: false`` the agent and
the warm start's teachers see no true output lengths. The warm start (MaskablePPO's config) imitates teacher
heuristics through the env's action mode; when no teacher can act in it (on InferMax-v0, vLLM-like batches
hold more than the K = 64 slots of the sequential mode), or the demonstrations would not fit in memory,
train.py refuses before training and names the fixes (a larger ``window``, ``--imitation-episodes``,
``--no-imitation``).

Everything lands in ``runs/<timestamp>/``: model.zip, best_model.zip, checkpoints/, tensorboard/,
learning_curve.png, gap_table.csv/.md, gap_instances.csv, gap_plot.png and run_config.json. ``--resume`` and
``--eval-only`` reuse the saved model's algorithm, env id and env kwargs, and are checked against them before
any run folder is created.

Seeds: training instances come from a SeedSequence stream below 10,000,000; validation instances use seeds
15,000,000 + i and the held-out evaluation instances 10,000,000 + i, so the three sets are disjoint. Optima
of the evaluation instances are cached on disk (``--optimum-cache``) keyed by setting, objective, seed and
solver settings (time limit, workers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import infermax_env  # noqa: F401  (registers the InferMax envs)
from infermax_env import OBJECTIVES
from agents.builders import (ALGORITHMS, attach_metadata, build_model, check_action_space, check_saved_model, load_agent,
                             load_config, saved_metadata)
from agents.callbacks import EpisodeRecorder, LearningCurve, ValidationCallback
from agents.evaluation import (EVAL_SEED_OFFSET, OptimumCache, TrainingSeedWrapper, evaluate, evaluation_seeds,
                               workload_for_seed)

DEFAULT_ENV_ID = "InferMax-Tiny-v0"
DEFAULT_ALGO = "maskable_ppo"
VALIDATION_SEED_OFFSET = EVAL_SEED_OFFSET + 5_000_000
VALIDATION_REFERENCE = "vllm"


# ---- command line ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env-id", default=None, help="a registered InferMax env id (default InferMax-Tiny-v0, "
                        "or with --eval-only the saved model's)")
    parser.add_argument("--env-kwargs", default="{}", help="JSON object of env constructor arguments "
                        "(merged over the algorithm config's env_kwargs)")
    parser.add_argument("--algo", default=None, choices=sorted(ALGORITHMS),
                        help=f"RL algorithm (default {DEFAULT_ALGO}; with --resume or --eval-only the saved model's)")
    parser.add_argument("--config", default=None, help="agent config JSON (default agents/configs/<algo>.json)")
    parser.add_argument("--timesteps", type=int, default=30_000, help="RL env steps to train for")
    parser.add_argument("--seed", type=int, default=0, help="seeds the model and the training instance stream")
    parser.add_argument("--n-envs", type=int, default=1, help="parallel training envs")
    parser.add_argument("--vec-env", choices=("subproc", "dummy"), default="subproc",
                        help="SubprocVecEnv (one process per env) or DummyVecEnv (in-process)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads (small nets: 1 is fastest)")
    parser.add_argument("--objective", choices=OBJECTIVES, default=None,
                        help="what the agent is rewarded for and the gap table reports: latency (sum of TTLT) or "
                        "gpu_time (total batch time); default: the env kwargs' objective, else latency")
    parser.add_argument("--eval-episodes", type=int, default=30, help="held-out instances to evaluate on")
    parser.add_argument("--heuristics", default="all", help="comma-separated baselines.SCHEDULERS names, or 'all'")
    parser.add_argument("--no-optimum", action="store_true", help="skip the CP-SAT optimum (large envs)")
    parser.add_argument("--solver-time-limit", type=float, default=2.0,
                        help="CP-SAT seconds per instance; an unproven optimum is reported as a bracket (best "
                        "schedule found, solver bound)")
    parser.add_argument("--solver-workers", type=int, default=2, help="CP-SAT search workers")
    parser.add_argument("--optimum-cache", default="runs/optimum_cache.json",
                        help="JSON file of solved optima, keyed by setting, objective, seed and solver settings")
    parser.add_argument("--validation-episodes", type=int, default=20, help="instances per validation pass")
    parser.add_argument("--eval-freq", type=int, default=10_000, help="env steps between validation passes")
    parser.add_argument("--checkpoint-freq", type=int, default=25_000, help="env steps between checkpoints")
    parser.add_argument("--output-dir", default="runs", help="a runs/<timestamp>/ folder is created in it")
    parser.add_argument("--resume", default=None, help="a model.zip to continue training from (its algorithm, env "
                        "id and env kwargs are reused; --env-kwargs overrides the latter)")
    parser.add_argument("--eval-only", default=None, help="a model.zip to evaluate (no training)")
    parser.add_argument("--no-imitation", action="store_true",
                        help="skip the config's behaviour-cloning warm start (pure RL from scratch)")
    parser.add_argument("--imitation-episodes", type=int, default=None,
                        help="teacher episodes for the warm start (default: the config's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", type=int, default=0, help="SB3 verbosity (0, 1 or 2)")
    args = parser.parse_args(argv)
    args.env_kwargs = parse_env_kwargs(parser, args.env_kwargs)
    for name in ("timesteps", "n_envs", "eval_episodes", "validation_episodes", "eval_freq", "checkpoint_freq",
                 "torch_threads", "solver_workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.resume and args.eval_only:
        parser.error("--resume and --eval-only are exclusive")
    if not (args.solver_time_limit > 0):
        parser.error(f"--solver-time-limit must be > 0, got {args.solver_time_limit}")
    if args.env_id is not None:
        check_env_id(parser, args.env_id)
    return args


def parse_env_kwargs(parser: argparse.ArgumentParser, text: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as error:
        parser.error(f"--env-kwargs is not valid JSON ({error}): {text!r}")
    if not isinstance(kwargs, dict):
        parser.error(f"--env-kwargs must be a JSON object, got {type(kwargs).__name__}: {text!r}")
    return kwargs


def infermax_env_ids() -> list[str]:
    return sorted(env_id for env_id in gym.registry if env_id.startswith("InferMax"))


def check_env_id(parser: argparse.ArgumentParser, env_id: str) -> None:
    if env_id not in gym.registry:
        parser.error(f"unknown env id {env_id!r}; registered InferMax envs: {', '.join(infermax_env_ids())}")


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Raise a ValueError naming the kwargs the env does not accept, or the value it rejects."""
    try:
        gym.make(env_id, **env_kwargs).close()
    except TypeError as error:
        unknown = [name for name in env_kwargs if _rejects_keyword(env_id, name, env_kwargs[name])]
        if unknown:
            raise ValueError(f"unknown env kwargs for {env_id}: {', '.join(unknown)} ({error})") from None
        raise ValueError(f"bad env kwargs {env_kwargs} for {env_id}: {error}") from None
    except ValueError as error:
        raise ValueError(f"bad env kwargs {env_kwargs} for {env_id}: {error}") from None


def _rejects_keyword(env_id: str, name: str, value: Any) -> bool:
    """Whether making ``env_id`` with only ``name=value`` fails because ``name`` is not a parameter."""
    try:
        gym.make(env_id, **{name: value}).close()
    except TypeError as error:
        return "unexpected keyword" in str(error) and repr(name) in str(error)
    except Exception:  # a rejected *value* of a known keyword: reported by the caller
        return False
    return False


# ---- environments ----------------------------------------------------------------------------------------
def make_training_env(env_id: str, env_kwargs: dict[str, Any], n_envs: int, vec_env: str, seed: int):
    """``n_envs`` monitored envs, each resetting on its own branch of the training seed stream."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    branches = [int(branch.generate_state(1)[0]) for branch in np.random.SeedSequence(seed).spawn(n_envs)]
    factories = [partial(make_monitored_env, env_id, env_kwargs, branch) for branch in branches]
    return SubprocVecEnv(factories) if vec_env == "subproc" and n_envs > 1 else DummyVecEnv(factories)


def make_monitored_env(env_id: str, env_kwargs: dict[str, Any], seed_stream: int) -> gym.Env:
    from stable_baselines3.common.monitor import Monitor

    return TrainingSeedWrapper(Monitor(gym.make(env_id, **env_kwargs)), seed_stream)


AGENT_ONLY_ENV_KWARGS = ("action_mode", "window", "oracle", "predictor", "reward_scale", "reference", "strict",
                         "invalid_action_penalty", "objective")
"""Env kwargs that change what the agent sees or is rewarded with, not the instances or their costs."""


def setting_name(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """Keys the optimum cache: the env id plus the kwargs that change instances or costs."""
    relevant = {k: v for k, v in sorted(env_kwargs.items()) if k not in AGENT_ONLY_ENV_KWARGS}
    return env_id + (json.dumps(relevant, sort_keys=True) if relevant else "")


# ---- the run ---------------------------------------------------------------------------------------------
@dataclass
class RunPlan:
    """What a run does, resolved from the command line, the agent config and any saved model."""

    algo: str
    config: dict[str, Any] | None
    env_id: str
    env_kwargs: dict[str, Any]
    objective: str
    heuristics: list[str]
    teachers: list[str] = field(default_factory=list)
    """The warm start's teacher heuristics (empty: no warm start)."""
    imitation_seeds: list[int] = field(default_factory=list)


def plan_run(args: argparse.Namespace) -> RunPlan:
    """Resolve and check everything before any folder is created or anything trains; a ValueError (or
    FileNotFoundError) says what is wrong and how to fix it."""
    saved = args.eval_only or args.resume
    if saved:
        meta = saved_metadata(saved)
        if args.algo and args.algo != meta["algo"]:
            raise ValueError(f"{saved} is a {meta['algo']} model, not {args.algo}: leave --algo out (the saved "
                             f"model's algorithm is used) or pass --algo {meta['algo']}")
        algo, env_id = meta["algo"], args.env_id or meta["env_id"]
    config = None if args.eval_only else load_config(args.config or args.algo or (algo if saved else DEFAULT_ALGO))
    if not saved:
        algo, env_id = config["algo"], args.env_id or DEFAULT_ENV_ID
        if args.algo and args.algo != algo:
            raise ValueError(f"--config {args.config} is a {algo} config, not {args.algo}")
    elif config is not None and config["algo"] != algo:
        raise ValueError(f"--config {args.config} is a {config['algo']} config but {saved} is a {algo} model")
    env_kwargs = {**(meta["env_kwargs"] if saved else config["env_kwargs"]), **args.env_kwargs}
    env_kwargs["objective"] = resolve_objective(args.objective, env_kwargs.get("objective"),
                                                training=not args.eval_only)
    check_env_kwargs(env_id, env_kwargs)
    plan = RunPlan(algo, config, env_id, env_kwargs, env_kwargs["objective"], heuristic_names(args.heuristics))
    env = gym.make(env_id, **env_kwargs)
    try:
        if saved:
            check_saved_model(saved, env, algo)
        else:
            check_action_space(algo, env.action_space)
        imitation = (config or {}).get("imitation")
        if imitation and not args.resume and not args.no_imitation:
            plan.imitation_seeds = imitation_seeds(args, imitation)
            plan.teachers = plan_teachers(env, imitation, plan.imitation_seeds)
    finally:
        env.close()
    return plan


def resolve_objective(cli: str | None, env_objective: str | None, training: bool) -> str:
    """The run's objective: ``--objective`` and the env kwargs' ``objective`` must agree when training (the
    env's reward follows its own objective); an evaluation may report another objective than the model was
    trained for."""
    if cli and env_objective and cli != env_objective and training:
        raise ValueError(f"--objective {cli} but the env kwargs say objective {env_objective!r}: the reward would "
                         f"follow {env_objective}; drop one of them or make them agree")
    return cli or env_objective or "latency"


def imitation_seeds(args: argparse.Namespace, imitation: dict[str, Any]) -> list[int]:
    """The warm start's instances: a branch of the training seed stream of its own (seed + 1), never an
    evaluation or validation seed."""
    from itertools import islice

    from agents.evaluation import training_seeds

    return list(islice(training_seeds(args.seed + 1), args.imitation_episodes or imitation.get("episodes", 500)))


DEMONSTRATION_MEMORY_LIMIT = 4 * 2**30
"""Largest warm-start demonstration set (bytes, estimated before collecting) train.py accepts."""


def plan_teachers(env: gym.Env, imitation: dict[str, Any], seeds: list[int]) -> list[str]:
    """The config's teachers that can act in ``env`` (oracle teachers only where it shows true output lengths,
    decisions its action mode can express on the first warm-start instance), checked to fit in memory; a
    :class:`NoUsableTeacherError` with the fixes otherwise."""
    from agents.imitation import NON_ORACLE_TEACHERS, NoUsableTeacherError, step_bytes, usable_teachers

    config = env.unwrapped.config
    candidates = imitation["teachers"] if config.oracle else imitation.get("non_oracle_teachers", NON_ORACLE_TEACHERS)
    usable, dropped = usable_teachers(env, candidates, seeds[0])
    if not usable:
        raise NoUsableTeacherError(no_teacher_message(env, dropped))
    for name, why in dropped.items():
        print(f"warm start: teacher {name} left out ({why})")
    per_episode = max(usable.values()) * step_bytes(env)
    if per_episode * len(seeds) > DEMONSTRATION_MEMORY_LIMIT:
        fits = DEMONSTRATION_MEMORY_LIMIT // per_episode
        fix = f"pass --imitation-episodes {fits} or less, or --no-imitation" if fits else "use --no-imitation"
        raise NoUsableTeacherError(
            f"the warm start would record about {per_episode * len(seeds) / 2**30:.1f} GiB of demonstrations "
            f"({len(seeds)} episodes of about {max(usable.values())} steps, {per_episode / 2**20:.0f} MiB each; "
            f"limit {DEMONSTRATION_MEMORY_LIMIT / 2**30:.0f} GiB): {fix}")
    return list(usable)


def no_teacher_message(env: gym.Env, dropped: dict[str, str]) -> str:
    """Why no teacher can act in ``env`` (one line per teacher, shortened) and the fixes that apply."""
    config = env.unwrapped.config
    reasons = "\n".join(f"  {name}: {why if len(why) <= 160 else why[:157] + '...'}" for name, why in dropped.items())
    fixes = ["no warm start (--no-imitation)"]
    if any("outside the K" in why for why in dropped.values()):
        fixes.insert(0, f"a window holding every request of an episode (--env-kwargs "
                        f"'{{\"window\": {len(env.unwrapped.sim.workload)}}}')")
    if config.action_mode == "priority":
        fixes.insert(0, "the sequential or select action mode, which can express the teachers' batches "
                        "(--env-kwargs '{\"action_mode\": \"sequential\"}')")
    return (f"no warm-start teacher can act in this env (action_mode={config.action_mode!r}, window={config.window}, "
            f"oracle={config.oracle}):\n{reasons}\nFixes: " + "; or ".join(fixes))


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    try:
        plan = plan_run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_dir = make_run_dir(Path(args.output_dir))
    (run_dir / "run_config.json").write_text(json.dumps(
        {**{k: v for k, v in vars(args).items() if k != "env_kwargs"}, "env_id": plan.env_id,
         "env_kwargs": plan.env_kwargs, "algo": plan.algo, "objective": plan.objective, "teachers": plan.teachers},
        indent=2))
    print(f"run directory: {run_dir}\nenv {plan.env_id} {plan.env_kwargs}, algorithm {plan.algo}")

    eval_env = gym.make(plan.env_id, **plan.env_kwargs)
    curve = LearningCurve()
    train_stats: dict[str, float] = {}
    notes: list[str] = []

    # training (or loading)
    if args.eval_only:
        model = load_agent(args.eval_only, eval_env, algo=plan.algo, device=args.device)
        notes = [model.infermax_metadata["warm_start"]] if model.infermax_metadata.get("warm_start") else []
    else:
        model, train_stats, notes = train(args, plan, eval_env, run_dir, curve)
        best = run_dir / "best_model.zip"
        if best.is_file():  # EvalCallback semantics: evaluate the checkpoint that validated best
            model = load_agent(best, eval_env, algo=plan.algo, device=args.device)
            print(f"evaluating {best} (best on the validation instances)")

    # evaluation on held-out instances: the agent, every heuristic, the optimum
    report = evaluate_agent(args, plan, model, eval_env)
    report.notes.extend(notes)
    paths = report.write(run_dir)
    if curve.episode_steps or curve.validation_steps:
        curve.plot(run_dir / "learning_curve.png", plan.objective, VALIDATION_REFERENCE)
    print("\n" + report.to_markdown())
    for key, value in train_stats.items():
        print(f"{key}: {value:.1f}")
    print(f"total wall time (s): {time.perf_counter() - started:.1f}")
    print(f"saved: {', '.join(str(p) for p in paths.values())}")
    return 0


def train(args: argparse.Namespace, plan: RunPlan, eval_env: gym.Env, run_dir: Path, curve: LearningCurve):
    """Build (or resume) the model, warm-start it, learn with validation and checkpoints; returns the model,
    timing figures and notes for the report."""
    from baselines import make_scheduler
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    train_env = make_training_env(plan.env_id, plan.env_kwargs, args.n_envs, args.vec_env, args.seed)
    if args.resume:
        model = load_agent(args.resume, train_env, algo=plan.algo, device=args.device)
        model.tensorboard_log = str(run_dir / "tensorboard")
    else:
        model = build_model(plan.config, train_env, seed=args.seed, device=args.device,
                            tensorboard_log=str(run_dir / "tensorboard"), verbose=args.verbose)
    attach_metadata(model, plan.env_id, plan.env_kwargs, plan.algo)
    stats: dict[str, float] = {}
    notes: list[str] = []
    if plan.teachers:
        warm_stats, note = warm_start(args, plan, model, eval_env)
        stats.update(warm_stats)
        attach_metadata(model, plan.env_id, plan.env_kwargs, plan.algo, warm_start=note)
    if model.infermax_metadata.get("warm_start"):
        notes.append(model.infermax_metadata["warm_start"])

    validation = [workload_for_seed(eval_env, seed)
                  for seed in evaluation_seeds(args.validation_episodes, VALIDATION_SEED_OFFSET)]
    recorder = EpisodeRecorder(curve, plan.objective)
    callbacks = CallbackList([
        recorder,
        ValidationCallback(eval_env, validation, plan.objective, (VALIDATION_REFERENCE,
                           lambda: make_scheduler(VALIDATION_REFERENCE)), args.eval_freq, curve,
                           best_model_path=run_dir / "best_model.zip", verbose=1),
        CheckpointCallback(max(args.checkpoint_freq // args.n_envs, 1), str(run_dir / "checkpoints"),
                           name_prefix="model"),
    ])
    start = time.perf_counter()
    model.learn(args.timesteps, callback=callbacks, progress_bar=not args.no_progress,
                reset_num_timesteps=not args.resume, tb_log_name=plan.algo)
    wall = time.perf_counter() - start
    model.save(run_dir / "model.zip")
    train_env.close()
    stats.update({"RL wall time (s)": wall, "RL env steps/s during learning": recorder.steps_per_second})
    return model, stats, notes


def warm_start(args: argparse.Namespace, plan: RunPlan, model, env: gym.Env) -> tuple[dict[str, float], str]:
    """Behaviour cloning of the per-instance best teacher heuristic on training instances (agents.imitation);
    returns timing figures and a note saying what was imitated."""
    from baselines import SCHEDULERS

    from agents.imitation import collect_demonstrations, pretrain

    imitation = plan.config["imitation"]
    start = time.perf_counter()
    demos = collect_demonstrations(env, plan.teachers, plan.imitation_seeds, plan.objective,
                                   progress=not args.no_progress)
    collected = time.perf_counter()
    losses = pretrain(model, demos, epochs=imitation.get("epochs", 10), batch_size=imitation.get("batch_size", 256),
                      learning_rate=imitation.get("learning_rate", 1e-3), seed=args.seed)
    done = time.perf_counter()
    used = {name: count for name, count in demos.teacher_counts.items() if count}
    print(f"warm start: {len(demos)} teacher steps from {len(plan.imitation_seeds)} instances {used}, "
          f"behaviour-cloning loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    if demos.inexpressible or demos.skipped_instances:
        print(f"warm start: teachers not expressible in the action mode on some instances {demos.inexpressible}, "
              f"{demos.skipped_instances} instances without any demonstration")
    oracle = sorted(name for name in used if SCHEDULERS[name].requires_oracle)
    note = (f"The agent was warm-started by imitating the per-instance best of {', '.join(plan.teachers)} "
            f"(instances per teacher: {used}); " + (f"of these, {', '.join(oracle)} read true output lengths."
                                                    if oracle else "none of them reads true output lengths."))
    timings = {"warm start: demonstrations (s)": collected - start, "warm start: behaviour cloning (s)": done - collected}
    return timings, note


def make_run_dir(output_dir: Path) -> Path:
    """A fresh ``<output_dir>/<timestamp>`` folder (``-2``, ``-3``... when one already exists)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        run_dir = output_dir / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {output_dir}")


def heuristic_names(text: str) -> list[str]:
    """``"all"`` (every registered heuristic) or a comma-separated list of
    ``baselines.SCHEDULERS`` names, checked."""
    from baselines import SCHEDULERS

    if text == "all":
        return sorted(SCHEDULERS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCHEDULERS]
    if unknown or not names:
        raise ValueError(f"unknown heuristics {unknown or text!r}; known: {', '.join(sorted(SCHEDULERS))}")
    return names


def evaluate_agent(args: argparse.Namespace, plan: RunPlan, model, eval_env: gym.Env):
    from agents.evaluation import runnable_heuristics

    seeds = evaluation_seeds(args.eval_episodes)
    heuristics, skipped = runnable_heuristics(eval_env, plan.heuristics)
    if skipped:
        print(f"skipping oracle heuristics (the env hides output lengths): {', '.join(skipped)}")
    cache = None if args.no_optimum else OptimumCache(args.optimum_cache)
    return evaluate(eval_env, {f"agent ({model.__class__.__name__})": model}, seeds, objective=plan.objective,
                    heuristics=heuristics, optimum_cache=cache, setting_name=setting_name(plan.env_id, plan.env_kwargs),
                    solver_time_limit=args.solver_time_limit, solver_workers=args.solver_workers,
                    progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
