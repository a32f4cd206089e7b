"""Warm start for the agents: behaviour cloning of the best heuristic per instance, before RL fine-tuning.

On each training instance every teacher heuristic runs directly on the simulator; the one with the lowest
objective on that instance is then rolled out through the env (``baselines.policy.SchedulerPolicy``), and its
observations, actions, action masks and returns-to-go are recorded. :func:`pretrain` fits the policy to those
actions (cross-entropy under the masks) and the value function to the returns, so that PPO starts from a
policy at least as good as a per-instance mix of the teachers and with a critic that already knows it.

Teachers must be able to act in the env: where output lengths are hidden (``oracle=False``) only non-oracle
heuristics qualify (:data:`NON_ORACLE_TEACHERS` by default), and a teacher's decisions must be expressible in
the env's action mode (e.g. every request it runs must be inside the K-slot window). :func:`usable_teachers`
checks both on a training instance before anything trains; during collection, an instance on which the best
teacher turns out not to be expressible falls back to the next best one (or is skipped, and counted).

Training instances only: the seeds come from :func:`agents.evaluation.training_seeds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm

from infermax_env.envs import NotExpressibleError
from infermax_env.metrics import objective_value

from .evaluation import action_masks, run_scheduler

NON_ORACLE_TEACHERS = ("sagesched", "infermax", "sarathi", "sort_prompt", "vllm")
"""Default teachers where output lengths are hidden: heuristics that read only what a real scheduler knows."""


class NoUsableTeacherError(ValueError):
    """No teacher heuristic can act in the env (oracle required, or decisions the action mode cannot express)."""


@dataclass
class Demonstrations:
    """Teacher transitions: observations (dict of stacked arrays), actions, masks, returns-to-go."""

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    masks: np.ndarray
    returns: np.ndarray
    teacher_counts: dict[str, int]
    inexpressible: dict[str, int]
    """Teacher -> instances on which it ranked ahead of the teacher used but its decisions could not be expressed
    as actions."""
    skipped_instances: int
    """Instances on which no teacher's decisions could be expressed (no demonstration recorded)."""

    def __len__(self) -> int:
        return len(self.actions)


def rank_teachers(teachers: Sequence[str], workload: Any, env: gym.Env, objective: str) -> list[str]:
    """``teachers`` from the lowest objective on ``workload`` to the highest (ties keep the given order)."""
    from baselines import make_scheduler

    values = [objective_value(run_scheduler(make_scheduler(name), workload, env), objective) for name in teachers]
    return [teachers[i] for i in np.argsort(values, kind="stable")]


def usable_teachers(env: gym.Env, teachers: Sequence[str], seed: int) -> tuple[dict[str, int], dict[str, str]]:
    """``(usable, dropped)``: the teachers that run in ``env``'s setting and whose decisions ``env``'s action
    mode expresses on the training instance ``env.reset(seed=seed)`` draws, each with its episode's number of
    env steps there; ``dropped`` maps the others to why."""
    from baselines import SCHEDULERS, make_scheduler

    oracle = env.unwrapped.config.oracle
    usable, dropped = {}, {}
    for name in teachers:
        if name not in SCHEDULERS:
            raise ValueError(f"unknown teacher {name!r}; known: {', '.join(sorted(SCHEDULERS))}")
        if SCHEDULERS[name].requires_oracle and not oracle:
            dropped[name] = "reads true output lengths, which this env hides (oracle=False)"
            continue
        try:
            usable[name] = len(_rollout(env, make_scheduler(name), seed)[1])
        except NotExpressibleError as error:
            dropped[name] = str(error)
    return usable, dropped


def step_bytes(env: gym.Env) -> int:
    """Bytes one recorded demonstration step takes (observation, action, mask, return)."""
    space = env.observation_space
    spaces = space.spaces.values() if isinstance(space, gym.spaces.Dict) else [space]
    observation = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in spaces)
    action = int(np.prod(env.action_space.shape or (1,))) * 8
    mask = int(np.asarray(action_masks(env)).size)
    return observation + action + mask + 4


def _rollout(env: gym.Env, scheduler: Any, seed: int) -> tuple[dict[str, list[np.ndarray]], list, list, list]:
    """One episode of ``scheduler`` through ``env``: observations, actions, masks and rewards per step."""
    from baselines.policy import SchedulerPolicy

    obs, _ = env.reset(seed=int(seed))
    policy = SchedulerPolicy(scheduler, env)
    observations: dict[str, list[np.ndarray]] = {}
    actions, masks, rewards = [], [], []
    done = False
    while not done:
        action, _ = policy.predict(obs)
        for key, value in obs.items():
            observations.setdefault(key, []).append(value)
        actions.append(np.asarray(action))
        masks.append(action_masks(env))
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        done = terminated or truncated
    return observations, actions, masks, rewards


def collect_demonstrations(env: gym.Env, teachers: Sequence[str], seeds: Sequence[int], objective: str,
                           progress: bool = False) -> Demonstrations:
    """Roll out the per-instance best of ``teachers`` on the instances ``env.reset(seed=s)`` draws.

    A teacher whose decisions the action mode cannot express on an instance gives way to the next best one;
    an instance no teacher can act on is skipped. Raises :class:`NoUsableTeacherError` when nothing at all
    was recorded.
    """
    from baselines import make_scheduler
    from tqdm.auto import tqdm

    if not teachers:
        raise ValueError("collect_demonstrations needs at least one teacher heuristic")
    observations: dict[str, list[np.ndarray]] = {}
    actions, masks, returns = [], [], []
    counts = {name: 0 for name in teachers}
    inexpressible = {name: 0 for name in teachers}
    skipped = 0
    for seed in tqdm(seeds, desc="demonstrations", disable=not progress):
        env.reset(seed=int(seed))
        for teacher in rank_teachers(teachers, env.unwrapped.sim.workload, env, objective):
            try:
                episode_obs, episode_actions, episode_masks, rewards = _rollout(env, make_scheduler(teacher), seed)
            except NotExpressibleError:
                inexpressible[teacher] += 1
                continue
            counts[teacher] += 1
            for key, values in episode_obs.items():
                observations.setdefault(key, []).extend(values)
            actions.extend(episode_actions)
            masks.extend(episode_masks)
            returns.extend(np.cumsum(rewards[::-1])[::-1].tolist())
            break
        else:
            skipped += 1
    if not actions:
        raise NoUsableTeacherError(f"none of the teachers {list(teachers)} could act in this env on {len(seeds)} "
                                   f"training instances (their decisions are not expressible in its action mode)")
    return Demonstrations({key: np.stack(values) for key, values in observations.items()}, np.stack(actions),
                          np.stack(masks), np.asarray(returns, dtype=np.float32), counts,
                          {k: v for k, v in inexpressible.items() if v}, skipped)


def pretrain(model: BaseAlgorithm, demos: Demonstrations, epochs: int = 10, batch_size: int = 256,
             learning_rate: float = 1e-3, value_coef: float = 0.5, seed: int = 0) -> list[float]:
    """Fit ``model.policy`` to the demonstrations (behaviour cloning plus value regression).

    Works for actor-critic policies with ``evaluate_actions`` (PPO, MaskablePPO). Returns the mean
    action-negative-log-likelihood of each epoch.
    """
    policy = model.policy
    if not hasattr(policy, "evaluate_actions"):
        raise TypeError(f"pretraining needs an actor-critic policy, got {type(policy).__name__}")
    masked = isinstance(policy, MaskableActorCriticPolicy)
    optimizer = th.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    device = policy.device
    tensors = {key: th.as_tensor(value, device=device) for key, value in demos.observations.items()}
    actions = th.as_tensor(demos.actions, device=device)
    masks = th.as_tensor(demos.masks, device=device)
    returns = th.as_tensor(demos.returns, device=device)
    history = []
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = th.as_tensor(rng.permutation(len(demos)), device=device)
        losses = []
        for start in range(0, len(demos), batch_size):
            index = order[start:start + batch_size]
            obs = {key: value[index].float() for key, value in tensors.items()}
            kwargs = {"action_masks": masks[index]} if masked else {}
            values, log_prob, _ = policy.evaluate_actions(obs, actions[index], **kwargs)
            nll = -log_prob.mean()
            loss = nll + value_coef * th.nn.functional.mse_loss(values.flatten(), returns[index])
            optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
            losses.append(nll.item())
        history.append(float(np.mean(losses)))
    policy.set_training_mode(False)
    return history
