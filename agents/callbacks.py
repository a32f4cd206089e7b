"""SB3 callbacks for training on InferMax envs: episode objectives for the learning curve and TensorBoard,
and EvalCallback-style validation against the best heuristic with best-model saving."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from infermax_env.metrics import objective_value
from infermax_env.workload import Workload

from .evaluation import as_action_fn, run_episode, run_scheduler


@dataclass
class LearningCurve:
    """What the callbacks record: training episodes and validation points, against env steps."""

    episode_steps: list[int] = field(default_factory=list)
    episode_objective: list[float] = field(default_factory=list)
    episode_return: list[float] = field(default_factory=list)
    validation_steps: list[int] = field(default_factory=list)
    validation_gap: list[float] = field(default_factory=list)

    def plot(self, path: str | Path, objective: str, reference: str) -> None:
        """Training episode returns (rolling mean) and the validation gap to ``reference`` against steps."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        if self.episode_steps:
            returns = np.asarray(self.episode_return)
            window = max(1, min(100, len(returns) // 10))
            smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
            top.plot(self.episode_steps, returns, ".", alpha=0.15, color="tab:blue", markersize=2)
            top.plot(self.episode_steps[window - 1:], smooth, color="tab:blue", label=f"rolling mean ({window})")
            top.legend()
        top.set_ylabel("training episode return")
        if self.validation_steps:
            bottom.plot(self.validation_steps, 100 * np.asarray(self.validation_gap), "o-", color="tab:red")
        bottom.axhline(0.0, color="grey", linewidth=0.8)
        bottom.set_ylabel(f"validation mean gap to {reference} (%)")
        bottom.set_xlabel("environment steps")
        fig.suptitle(f"learning curve (objective: {objective})")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


class EpisodeRecorder(BaseCallback):
    """Records each finished training episode's return and objective (from its final ``info["metrics"]``)
    in a :class:`LearningCurve`, logs them to TensorBoard, and measures env steps per second."""

    def __init__(self, curve: LearningCurve, objective: str, verbose: int = 0):
        super().__init__(verbose)
        self.curve = curve
        self.objective = objective
        self._returns: np.ndarray | None = None
        self._start_time = 0.0
        self._start_steps = 0

    def _on_training_start(self) -> None:
        self._returns = np.zeros(self.training_env.num_envs)
        self._start_time = time.perf_counter()
        self._start_steps = self.num_timesteps

    def _on_step(self) -> bool:
        rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        self._returns += rewards
        for index in np.flatnonzero(dones):
            info = infos[index]
            self.curve.episode_steps.append(self.num_timesteps)
            self.curve.episode_return.append(float(self._returns[index]))
            self.logger.record_mean("infermax/episode_return", float(self._returns[index]))
            if "metrics" in info:
                value = objective_value(getattr(info["metrics"], "summary", info["metrics"]), self.objective)
                self.curve.episode_objective.append(value)
                self.logger.record_mean(f"infermax/episode_{self.objective}", value)
            self._returns[index] = 0.0
        return True

    @property
    def steps_per_second(self) -> float:
        """Env steps per second of wall time since training started (rollouts and updates together)."""
        elapsed = time.perf_counter() - self._start_time
        return (self.num_timesteps - self._start_steps) / elapsed if elapsed > 0 else float("nan")


class ValidationCallback(BaseCallback):
    """Every ``eval_freq`` env steps, run the agent deterministically on fixed validation workloads, record
    its mean gap to ``reference`` (a scheduler's objective on the same workloads), log it, and save the best
    model so far to ``best_model_path`` (EvalCallback style).

    :param env: a single (non-vectorised) env configured like the training env.
    :param workloads: the validation instances (drawn from seeds disjoint from training and test seeds).
    :param reference: ``(name, scheduler factory)``; its objectives are computed once, up front.
    """

    def __init__(self, env: gym.Env, workloads: Sequence[Workload], objective: str, reference: tuple[str, Any],
                 eval_freq: int, curve: LearningCurve, best_model_path: str | Path | None = None, verbose: int = 0):
        super().__init__(verbose)
        if eval_freq < 1:
            raise ValueError(f"eval_freq must be >= 1, got {eval_freq}")
        self.env = env
        self.workloads = list(workloads)
        self.objective = objective
        self.reference_name, make_reference = reference
        self.reference_values = np.array([objective_value(run_scheduler(make_reference(), w, env), objective)
                                          for w in self.workloads])
        self.eval_freq = eval_freq
        self.curve = curve
        self.best_model_path = Path(best_model_path) if best_model_path else None
        self.best_gap = float("inf")
        self._next_eval = eval_freq

    def _on_training_start(self) -> None:
        self._next_eval = self.num_timesteps + self.eval_freq
        self.validate()  # the starting point (after any warm start)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_eval:
            self._next_eval += self.eval_freq
            self.validate()
        return True

    def _on_training_end(self) -> None:
        if not self.curve.validation_steps or self.curve.validation_steps[-1] != self.num_timesteps:
            self.validate()

    def validate(self) -> float:
        """Evaluate now; returns the mean gap to the reference."""
        action_fn = as_action_fn(self.model)
        values = np.array([objective_value(run_episode(self.env, action_fn, w), self.objective)
                           for w in self.workloads])
        gap = float(np.mean(values / self.reference_values - 1.0))
        self.curve.validation_steps.append(self.num_timesteps)
        self.curve.validation_gap.append(gap)
        self.logger.record(f"infermax/validation_gap_to_{self.reference_name}", gap)
        if gap < self.best_gap:
            self.best_gap = gap
            if self.best_model_path is not None:
                self.model.save(self.best_model_path)
        if self.verbose:
            print(f"[validation] step {self.num_timesteps}: mean gap to {self.reference_name} {100 * gap:+.2f}% "
                  f"(best {100 * self.best_gap:+.2f}%)")
        return gap
