"""Run a policy or a heuristic on one workload and return its metric summary.

:func:`as_action_fn` accepts an SB3 model (MaskablePPO gets the env's action masks), anything with an
SB3-style ``predict`` (e.g. ``baselines.policy.SchedulerPolicy``), or a plain callable ``obs -> action``.
Heuristic baselines run directly on the simulator (:func:`run_scheduler`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from infermax_env.metrics import objective_value
from infermax_env.simulator import Simulator
from infermax_env.workload import Workload

ActionFn = Callable[[Any, gym.Env], Any]
"""``(observation, env) -> action``: one decision of a policy in ``env``."""


def as_action_fn(policy: Any, deterministic: bool = True) -> ActionFn:
    """Adapt an SB3 model, an object with SB3-style ``predict``, or a callable ``obs -> action``."""
    from sb3_contrib import MaskablePPO

    if isinstance(policy, MaskablePPO):
        def masked(obs: Any, env: gym.Env) -> Any:
            return policy.predict(obs, deterministic=deterministic, action_masks=action_masks(env))[0]
        return masked
    if hasattr(policy, "predict"):
        return lambda obs, env: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return lambda obs, env: policy(obs)
    raise TypeError(f"cannot run {type(policy).__name__}: expected an SB3 model, an object with predict(obs) or "
                    f"a callable obs -> action")


def action_masks(env: gym.Env) -> np.ndarray:
    """``env.action_masks()`` through any Gymnasium wrappers."""
    return np.asarray(env.get_wrapper_attr("action_masks")())


def run_episode(env: gym.Env, action_fn: ActionFn, workload: Workload, max_steps: int = 1_000_000,
                on_step: Callable[[], Any] | None = None) -> dict[str, float]:
    """Serve ``workload`` in ``env`` with ``action_fn``; returns the episode's metric summary. ``on_step`` is
    called after every env step (e.g. a progress bar's ``update``)."""
    obs, info = env.reset(options={"workload": workload})
    for _ in range(max_steps):
        obs, _, terminated, truncated, info = env.step(action_fn(obs, env))
        if on_step is not None:
            on_step()
        if terminated or truncated:
            if truncated and not terminated:
                raise RuntimeError(f"episode truncated before every request finished ({workload.name}, "
                                   f"{len(workload)} requests)")
            return episode_summary(info)
    raise RuntimeError(f"policy did not finish {len(workload)} requests within {max_steps} env steps")


def episode_summary(info: Mapping[str, Any]) -> dict[str, float]:
    """The metric summary in the final ``info`` of an episode."""
    metrics = info.get("metrics")
    if metrics is None:
        raise KeyError(f"the final info has no 'metrics'; keys: {sorted(info)}")
    return dict(getattr(metrics, "summary", metrics))


def run_scheduler(scheduler: Any, workload: Workload, env: gym.Env) -> dict[str, float]:
    """Run a scheduler (``reset``/``decide``) directly on a simulator configured like ``env``."""
    cost_model, engine, oracle = simulator_config(env)
    return dict(Simulator(workload, cost_model, engine, oracle=oracle).run(scheduler).summary)


def simulator_config(env: gym.Env) -> tuple[Any, Any, bool]:
    """``(cost_model, engine config, oracle)`` of the simulator behind ``env``."""
    sim = env.unwrapped.sim
    return sim.cost_model, sim.config, sim.oracle


def workload_for_seed(env: gym.Env, seed: int) -> Workload:
    """The instance ``env.reset(seed=seed)`` would serve."""
    env.reset(seed=seed)
    return env.unwrapped.sim.workload


def runnable_heuristics(env: gym.Env, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(runnable, skipped)``: the heuristics among ``names`` that can run in ``env``'s setting; oracle
    schedulers (``requires_oracle``) are skipped where output lengths are hidden (``oracle=False``)."""
    from baselines import SCHEDULERS

    hidden = not env.unwrapped.config.oracle
    skipped = [name for name in names if hidden and SCHEDULERS[name].requires_oracle]
    return [name for name in names if name not in skipped], skipped

