"""Warm start for the agents: behaviour cloning of the best heuristic per instance, before RL fine-tuning.

On each training instance every teacher heuristic runs directly on the simulator; the one with the lowest
objective on that instance is then rolled out through the env (``baselines.policy.SchedulerPolicy``), and its
observations, actions, action masks and returns-to-go are recorded. :func:`pretrain` fits the policy to those
actions (cross-entropy under the masks) and the value function to the returns, so that PPO starts from a
policy at least as good as a per-instance mix of the teachers and with a critic that already knows it.

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

from .evaluation import action_masks, objective_value_of, run_scheduler


@dataclass
class Demonstrations:
    """Teacher transitions: observations (dict of stacked arrays), actions, masks, returns-to-go."""

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    masks: np.ndarray
    returns: np.ndarray
    teacher_counts: dict[str, int]

    def __len__(self) -> int:
        return len(self.actions)


def best_teacher(teachers: Sequence[str], workload: Any, env: gym.Env, objective: str) -> str:
    """The teacher with the lowest objective on ``workload`` (first in ``teachers`` on ties)."""
    from baselines import make_scheduler

    values = [objective_value_of(run_scheduler(make_scheduler(name), workload, env), objective) for name in teachers]
    return teachers[int(np.argmin(values))]


def collect_demonstrations(env: gym.Env, teachers: Sequence[str], seeds: Sequence[int], objective: str,
                           progress: bool = False) -> Demonstrations:
    """Roll out the per-instance best of ``teachers`` on the instances ``env.reset(seed=s)`` draws."""
    from baselines import make_scheduler
    from baselines.policy import SchedulerPolicy
    from tqdm.auto import tqdm

    if not teachers:
        raise ValueError("collect_demonstrations needs at least one teacher heuristic")
    observations: dict[str, list[np.ndarray]] = {}
    actions, masks, returns = [], [], []
    counts = {name: 0 for name in teachers}
    for seed in tqdm(seeds, desc="demonstrations", disable=not progress):
        obs, _ = env.reset(seed=int(seed))
        teacher = best_teacher(teachers, env.unwrapped.sim.workload, env, objective)
        counts[teacher] += 1
        policy = SchedulerPolicy(make_scheduler(teacher), env)
        rewards = []
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
        returns.extend(np.cumsum(rewards[::-1])[::-1].tolist())
    return Demonstrations({key: np.stack(values) for key, values in observations.items()}, np.stack(actions),
                          np.stack(masks), np.asarray(returns, dtype=np.float32), counts)


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
