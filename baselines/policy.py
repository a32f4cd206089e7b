"""Drive an InferMax env with a heuristic scheduler: the scheduler as an SB3-style policy.

``SchedulerPolicy(scheduler, env).predict(obs)`` asks ``scheduler.decide`` for the next :class:`Decision` on
the env's own simulator and encodes it as the action(s) that make the env launch exactly that decision
(``env.unwrapped.decision_to_actions``). A decision the action mode cannot express raises
:class:`~infermax_env.envs.NotExpressibleError` instead of silently diverging. Running a scheduler this way
gives the same metrics as ``sim.run(scheduler)``, which is how the tests prove the action spaces can express
real schedulers.

Example::

    env = gymnasium.make("InferMax-Tiny-v0", action_mode="sequential")
    policy = SchedulerPolicy(VLLMScheduler(), env)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action, _ = policy.predict(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from infermax_env.envs import InferMaxEnv
from infermax_env.simulator import Scheduler


class SchedulerPolicy:
    """A :class:`~infermax_env.simulator.Scheduler` acting through one (non-vectorised) InferMax env.

    :param scheduler: any object with ``reset(sim)`` and ``decide(sim) -> Decision``.
    :param env: the env to act in (wrappers allowed; ``env.unwrapped`` must be an ``InferMaxEnv``).
    """

    def __init__(self, scheduler: Scheduler, env: gym.Env):
        base = env.unwrapped
        if not isinstance(base, InferMaxEnv):
            raise TypeError(f"SchedulerPolicy needs an InferMax env, got {type(base).__name__}")
        self.scheduler = scheduler
        self.env = base
        self._episode = -1
        self._queue: deque[Any] = deque()
        self._on_step = getattr(scheduler, "on_step", None)
        self._pushed: Any = None

    def predict(self, observation: Any = None, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[Any, None]:
        """The next action for the env's current state (the observation itself is not needed: the scheduler
        reads the simulator). Returns ``(action, None)`` as SB3 policies do."""
        env = self.env
        if env.sim is None:
            raise gym.error.ResetNeeded("reset the env before asking the policy for an action")
        if env.episode != self._episode or (episode_start is not None and bool(np.any(episode_start))):
            self._episode = env.episode
            self._queue.clear()
            self._pushed = None
            self.scheduler.reset(env.sim)
        if not self._queue:
            if self._on_step is not None and env.last_result is not None and env.last_result is not self._pushed:
                self._pushed = env.last_result
                self._on_step(self._pushed)  # as Simulator.run does after each step
            self._queue.extend(env.decision_to_actions(self.scheduler.decide(env.sim)))
        return self._queue.popleft(), None
