"""A saved SB3 agent's evaluation episodes over many seeds as Ray tasks (:mod:`baselines.ray_pool`), with the same
results as the local :func:`agent_episodes`."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym

import infermax_env  # noqa: F401  (registers the envs in each Ray worker)
from baselines.ray_pool import ray_map

from .builders import load_agent
from .evaluation.rollouts import as_action_fn, run_episode, workload_for_seed


def agent_summaries(model_path: str, env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int], *,
                    algo: str | None = None, seeds_per_task: int = 8, address: str | None = None,
                    progress: bool = False) -> list[dict]:
    """:func:`agent_episodes` of the SB3 agent saved at ``model_path`` on each seed's instance, as Ray tasks of
    ``seeds_per_task`` seeds (each task loads the model once); summaries in the order of ``seeds``."""
    if seeds_per_task < 1:
        raise ValueError(f"seeds_per_task must be >= 1, got {seeds_per_task!r}")
    seeds = list(seeds)
    chunks = [seeds[i:i + seeds_per_task] for i in range(0, len(seeds), seeds_per_task)]
    results = ray_map(agent_episodes, [(model_path, env_id, env_kwargs, chunk, algo) for chunk in chunks],
                      address=address, progress=progress, description="agent episodes")
    return [summary for chunk in results for summary in chunk]


def agent_episodes(model_path: str, env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int],
                   algo: str | None = None) -> list[dict]:
    """The metric summary of one deterministic episode of the SB3 agent saved at ``model_path`` per seed, on the
    instance ``gym.make(env_id, **env_kwargs).reset(seed=seed)`` serves (MaskablePPO gets the env's masks); the
    local computation that :func:`agent_summaries` distributes. ``algo`` (an :data:`agents.ALGORITHMS` name) is
    needed for models not saved by ``train.py``."""
    env = gym.make(env_id, **env_kwargs)
    action_fn = as_action_fn(load_agent(model_path, algo=algo, device="cpu"))
    return [run_episode(env, action_fn, workload_for_seed(env, seed)) for seed in seeds]
