"""Build, save and load SB3 agents for the InferMax envs from the readable configs in ``agents/configs``.

Each ``configs/<algo>.json`` holds ``algo``, ``policy`` (``"slot_scoring"``: the Decima-style policies of
:mod:`agents.policies`; ``"mlp"``: SB3's multi-input MLP over :class:`~agents.extractors.SlotSetExtractor`),
``env_kwargs`` the agent is meant for (its action mode), ``hyperparameters`` passed to the algorithm and
``policy_kwargs`` passed to the policy, and optionally ``imitation``: the behaviour-cloning warm start of
:mod:`agents.imitation` (``teachers``; ``non_oracle_teachers``, used instead where the env hides output
lengths; ``episodes``, ``epochs``, ``batch_size``, ``learning_rate``).

Saved models carry ``infermax_metadata`` (env id, env kwargs, algorithm) so that evaluation-only runs can
rebuild the env they were trained on; :func:`load_agent` refuses an env whose observation space differs from
the one the model was trained on, naming both.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
from sb3_contrib import MaskablePPO, QRDQN
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file

from .extractors import SlotSetExtractor
from .policies import MaskableSlotScoringPolicy, SlotScoringPolicy

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"maskable_ppo": MaskablePPO, "ppo": PPO, "qrdqn": QRDQN}
"""Algorithm name -> SB3 class. ``qrdqn`` is the off-policy, value-based option (Discrete actions only)."""

SLOT_SCORING_POLICIES = {"maskable_ppo": MaskableSlotScoringPolicy, "ppo": SlotScoringPolicy}

CONFIG_KEYS = {"description", "algo", "policy", "env_kwargs", "hyperparameters", "policy_kwargs", "imitation"}
IMITATION_KEYS = {"teachers", "non_oracle_teachers", "episodes", "epochs", "batch_size", "learning_rate"}


class ObservationSpaceMismatchError(ValueError):
    """A saved model was asked to act in an env whose observation space differs from its training env's."""


def check_algorithm(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class for ``algo``; a clear error naming the known ones otherwise."""
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(sorted(ALGORITHMS))}") from None


def load_config(algo_or_path: str | Path) -> dict[str, Any]:
    """The config of a known algorithm (``"maskable_ppo"``) or a JSON file path, validated."""
    path = Path(algo_or_path)
    if not path.suffix:
        check_algorithm(str(algo_or_path))
        path = CONFIG_DIR / f"{algo_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"agent config {str(path)!r} does not exist")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"agent config {path} is not valid JSON: {error}") from None
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValueError(f"agent config {path} has unknown keys {sorted(unknown)}; allowed: {sorted(CONFIG_KEYS)}")
    check_algorithm(config.get("algo", ""))
    if config.get("policy") not in ("slot_scoring", "mlp"):
        raise ValueError(f"agent config {path}: policy must be 'slot_scoring' or 'mlp', got {config.get('policy')!r}")
    for key in ("env_kwargs", "hyperparameters", "policy_kwargs"):
        config.setdefault(key, {})
    unknown = set(config.get("imitation") or {}) - IMITATION_KEYS
    if unknown:
        raise ValueError(f"agent config {path}: unknown imitation keys {sorted(unknown)}; allowed: "
                         f"{sorted(IMITATION_KEYS)}")
    return config


def build_model(config: dict[str, Any], env: gym.Env | Any, *, seed: int | None = None, device: str = "auto",
                tensorboard_log: str | None = None, verbose: int = 0,
                hyperparameters: dict[str, Any] | None = None) -> BaseAlgorithm:
    """A fresh model for ``env`` (a Gymnasium env or a VecEnv) from ``config`` (see :func:`load_config`).

    ``hyperparameters`` override the config's.
    """
    algo = config["algo"]
    cls = check_algorithm(algo)
    check_action_space(algo, env.action_space)
    policy_kwargs = copy.deepcopy(config["policy_kwargs"])
    if config["policy"] == "slot_scoring":
        if algo not in SLOT_SCORING_POLICIES:
            raise ValueError(f"no slot-scoring policy for {algo!r}; use policy 'mlp'")
        policy: Any = SLOT_SCORING_POLICIES[algo]
    else:
        policy = "MultiInputPolicy"
        policy_kwargs.setdefault("features_extractor_class", SlotSetExtractor)
    params = {**config["hyperparameters"], **(hyperparameters or {})}
    return cls(policy, env, policy_kwargs=policy_kwargs, seed=seed, device=device, tensorboard_log=tensorboard_log,
               verbose=verbose, **params)


def check_action_space(algo: str, space: gym.spaces.Space) -> None:
    """A ValueError naming the action mode to use when ``algo`` cannot act in ``space``."""
    if algo == "qrdqn" and not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"qrdqn needs a Discrete action space (action_mode='sequential'), got {space}")


def attach_metadata(model: BaseAlgorithm, env_id: str, env_kwargs: dict[str, Any], algo: str,
                    warm_start: str | None = None) -> None:
    """Record what the model was trained on (and what its warm start imitated); saved with it by
    ``model.save``. A warm-start note already attached (a resumed model's) is kept unless one is given."""
    previous = (getattr(model, "infermax_metadata", None) or {}).get("warm_start")
    model.infermax_metadata = {"env_id": env_id, "env_kwargs": dict(env_kwargs), "algo": algo}
    if warm_start or previous:
        model.infermax_metadata["warm_start"] = warm_start or previous


def saved_metadata(path: str | Path) -> dict[str, Any]:
    """What :func:`attach_metadata` stored in a saved model (env id, env kwargs, algorithm)."""
    meta = _saved_data(path).get("infermax_metadata")
    if not meta:
        raise ValueError(f"{path} has no infermax_metadata (not saved by train.py), so its algorithm and env are "
                         f"unknown: load it with agents.builders.load_agent(path, env, algo=...)")
    return meta


def _saved_data(path: str | Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    data, _, _ = load_from_zip_file(Path(path), load_data=True, device="cpu")
    return data or {}


def load_agent(path: str | Path, env: gym.Env | Any | None = None, algo: str | None = None,
               device: str = "auto") -> BaseAlgorithm:
    """Load a saved model; with ``env`` (a Gymnasium env or a VecEnv of any size), first check it with
    :func:`check_saved_model`, then attach it (SB3 ``load(path, env=env)``, which adopts the env's size)."""
    cls = check_saved_model(path, env, algo)
    return cls.load(Path(path), env=env, device=device)


def check_saved_model(path: str | Path, env: gym.Env | Any | None = None,
                      algo: str | None = None) -> type[BaseAlgorithm]:
    """The SB3 class to load the model at ``path`` with, after checking it without loading its weights.

    ``algo`` defaults to the algorithm recorded in the model; a different one is refused, naming both. With
    ``env``, raises :class:`ObservationSpaceMismatchError` naming the saved and the env's spaces when they
    differ.
    """
    data = _saved_data(path)
    saved_algo = (data.get("infermax_metadata") or {}).get("algo")
    if algo is not None and saved_algo is not None and algo != saved_algo:
        raise ValueError(f"{path} is a {saved_algo} model, not {algo}: load it as {saved_algo} "
                         f"(train.py: --algo {saved_algo}, or leave --algo out)")
    if algo is None and saved_algo is None:
        raise ValueError(f"{path} has no infermax_metadata (not saved by train.py): pass algo=...")
    cls = check_algorithm(algo or saved_algo)
    if env is not None:
        check_spaces_match(data["observation_space"], data["action_space"], env)
    return cls


def check_spaces_match(observation_space: gym.Space, action_space: gym.Space, env: gym.Env | Any) -> None:
    """Raise :class:`ObservationSpaceMismatchError` when ``env``'s spaces differ from a model's."""
    given = env.observation_space
    if observation_space != given:
        raise ObservationSpaceMismatchError(
            f"the model was trained on observations {describe_space(observation_space)} but this env gives "
            f"{describe_space(given)}; use the env (id and kwargs, e.g. window, action_mode) the model was "
            f"trained on")
    if action_space != env.action_space:
        raise ObservationSpaceMismatchError(
            f"the model was trained with actions {action_space} but this env has {env.action_space}; "
            f"use the same action_mode and window")


def describe_space(space: gym.spaces.Space) -> str:
    """Compact shape description: ``{requests: (16, 9), slot_mask: (16,), ...}``."""
    if isinstance(space, gym.spaces.Dict):
        return "{" + ", ".join(f"{key}: {tuple(sub.shape)}" for key, sub in space.spaces.items()) + "}"
    return str(space)
