"""PPO with an input-dependent (group) baseline: several rollouts of the same workload window per update.

In an input-driven env the return depends on the arrival sequence as much as on the policy, so a state-value
baseline leaves most of the variance in. :class:`GroupPPO` replaces SB3's rollout collection: each update
serves one window (drawn from a :class:`~agents.curriculum.Curriculum`) ``group_size`` times, one full episode
per copy of the env, with batched policy inference over the copies. The advantage of a step taken at simulated
time ``t`` in rollout ``i`` is its undiscounted return-to-go (gamma = 1; the reward is minus the latency area)
minus the mean return-to-go of the *other* rollouts from time ``t`` on (leave-one-out, so the baseline does not
depend on the rollout's own actions). PPO's clipped update then runs unchanged on these advantages.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.utils import obs_as_tensor

from .curriculum import Curriculum
from .evaluation import training_seeds


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted ``sum_{s >= t} r_s`` for every t."""
    return np.cumsum(rewards[::-1])[::-1].copy()


def group_advantages(rewards: list[np.ndarray], times: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(advantages, returns-to-go) of each rollout of one group.

    ``times[i][t]`` is the simulated clock when rollout ``i`` took step ``t`` (non-decreasing). The baseline of
    that step is the mean over the other rollouts ``j`` of their return-to-go from their first step at or after
    that time (0 when rollout ``j`` had already finished by then). With a single rollout the baseline is 0.
    """
    if len(rewards) != len(times) or any(len(r) != len(t) for r, t in zip(rewards, times)):
        raise ValueError("rewards and times need one array per rollout, of equal lengths")
    to_go = [returns_to_go(np.asarray(r, dtype=np.float64)) for r in rewards]
    advantages = []
    for i, (g, t) in enumerate(zip(to_go, times)):
        others = [j for j in range(len(rewards)) if j != i]
        baseline = np.zeros(len(g))
        for j in others:
            position = np.searchsorted(times[j], t, side="left")
            padded = np.append(to_go[j], 0.0)
            baseline += padded[position]
        if others:
            baseline /= len(others)
        advantages.append(g - baseline)
    return advantages, to_go


class GroupPPO(PPO):
    """PPO whose updates use :func:`group_advantages` over ``group_size`` rollouts of one window.

    :param env_factory: makes one training env (called ``group_size`` times, on the first rollout; each must
        accept ``reset(options={"workload": w})``, e.g. a :class:`~agents.residual.ResidualEnv`). Not saved:
        set ``model.env_factory`` again after ``GroupPPO.load``.
    :param group_size: rollouts of the same window per update.
    :param curriculum: which windows to draw as training progresses.
    :param window_seed: seeds the stream of training windows (never an evaluation seed).
    :param progress_fn: training progress in [0, 1] for the curriculum (not saved); default SB3's progress
        within the current ``learn`` call.
    Other arguments as :class:`~stable_baselines3.PPO` (``env`` gives the spaces; ``n_steps`` is ignored:
    an update has as many steps as its ``group_size`` episodes took).
    """

    def __init__(self, policy: Any, env: Any, *, env_factory: Callable[[], gym.Env] | None = None,
                 group_size: int = 4, curriculum: Curriculum | None = None, window_seed: int = 0,
                 progress_fn: Callable[[], float] | None = None, **kwargs: Any):
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        kwargs.setdefault("gamma", 1.0)
        super().__init__(policy, env, **kwargs)
        self.group_size = group_size
        self.curriculum = curriculum or Curriculum()
        self.window_seed = window_seed
        self.windows_drawn = 0
        self.env_factory = env_factory
        self.progress_fn = progress_fn
        self.group_envs: list[gym.Env] = []

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "group_envs", "env_factory", "progress_fn"]

    @property
    def progress(self) -> float:
        return self.progress_fn() if self.progress_fn is not None else 1.0 - self._current_progress_remaining

    def next_window(self):
        """The next training window of the curriculum at the current progress."""
        seed = next(islice(training_seeds(self.window_seed), self.windows_drawn, None))
        self.windows_drawn += 1
        return self.curriculum.draw(self.progress, seed)

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        self.policy.set_training_mode(False)
        callback.on_rollout_start()
        if not self.group_envs:
            if self.env_factory is None:
                raise RuntimeError("GroupPPO has no env_factory (set model.env_factory after loading)")
            self.group_envs = [self.env_factory() for _ in range(self.group_size)]
        workload = self.next_window()
        envs = self.group_envs
        observations = [e.reset(options={"workload": workload})[0] for e in envs]
        steps: list[list[tuple]] = [[] for _ in envs]
        rewards: list[list[float]] = [[] for _ in envs]
        times: list[list[float]] = [[] for _ in envs]
        alive = list(range(len(envs)))
        low, high = self.action_space.low, self.action_space.high
        while alive:
            batch = {key: np.stack([observations[i][key] for i in alive]) for key in observations[alive[0]]}
            with th.no_grad():
                actions, values, log_probs = self.policy(obs_as_tensor(batch, self.device))
            actions_np = actions.cpu().numpy()
            still = []
            for row, i in enumerate(alive):
                times[i].append(envs[i].unwrapped.sim.clock)
                steps[i].append((observations[i], actions_np[row], values[row], log_probs[row]))
                obs, reward, terminated, truncated, info = envs[i].step(np.clip(actions_np[row], low, high))
                rewards[i].append(float(reward))
                observations[i] = obs
                if terminated or truncated:
                    self.ep_info_buffer.extend([{"r": sum(rewards[i]), "l": len(rewards[i]), "t": 0.0}])
                else:
                    still.append(i)
            self.num_timesteps += len(alive)
            alive = still
            callback.update_locals(locals())
            if not callback.on_step():
                return False
        advantages, to_go = group_advantages([np.array(r) for r in rewards], [np.array(t) for t in times])
        self.rollout_buffer = self._fill_buffer(steps, rewards, advantages, to_go)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _fill_buffer(self, steps, rewards, advantages, to_go) -> DictRolloutBuffer:
        total = sum(len(s) for s in steps)
        buffer = DictRolloutBuffer(total, self.observation_space, self.action_space, device=self.device, gamma=1.0,
                               gae_lambda=1.0, n_envs=1)
        for rollout, rollout_rewards in zip(steps, rewards):
            for t, (obs, action, value, log_prob) in enumerate(rollout):
                buffer.add({key: value_[None] for key, value_ in obs.items()}, action[None],
                           np.array([rollout_rewards[t]]), np.array([t == 0]), value.reshape(1, 1),
                           log_prob.reshape(1))
        buffer.advantages[:, 0] = np.concatenate(advantages)
        buffer.returns[:, 0] = np.concatenate(to_go)
        return buffer


__all__ = ["GroupPPO", "group_advantages", "returns_to_go"]
