"""A residual policy on a ranking heuristic: the agent learns a per-request correction to the heuristic's priority.

Per request ``r`` the score is ``log priority_r + c_r``: the base heuristic's priority (for ``"sagesched"`` the
Gittins index of the remaining hybrid cost under the online output-length predictor) plus a learned
correction ``c_r``. The corrected ranking then drives the base heuristic's own batch builder (its admission
reservation, its eviction order, its chunking), so a zero correction *is* the base heuristic, decision for
decision; the :class:`ResidualPolicy` head starts with exactly zero output weights, so an untrained agent
reproduces the heuristic's metrics and training starts from it.

Why not the env's ``priority`` action mode: that mode visits requests by score and fills the budget greedily,
evicting lower-ranked residents; it has no admission control, so it cannot express SageSched (it raises
``NotExpressibleError`` within a few iterations), and Gittins scores decoded by it serve far worse than
SageSched. The decision of the corrected builder is instead launched whole with ``env.launch`` (the step the
sequential mode's evictions, adds and launch would take, checked by ``Simulator.step``); one agent step is one
scheduling iteration.

Observation (:class:`ResidualEnv`): the env's ``requests`` rows (first ``window`` slots) plus
:data:`EXTRA_FEATURES` per slot, computed from an online :class:`~baselines.predictor.OutputLengthPredictor`
that learns only from finished requests (never the true length of an unfinished one), the ``slot_mask`` and
the ``global`` features.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch as th

from baselines import SCHEDULERS, make_scheduler
from baselines.builder import BatchBuilderScheduler, Order
from baselines.gittins import gittins_index
from baselines.predictor import OutputLengthPredictor
from infermax_env.simulator import Simulator

EXTRA_FEATURES = ("remaining_output_q10", "remaining_output_q50", "remaining_output_q90", "gittins_index")
"""Per-slot features appended to the env's request features: the 10/50/90% quantiles of the predicted output
length given the tokens generated so far (scaled like the env's token counts) and the Gittins index of the
remaining hybrid cost, mapped to ``index / (1 + index)``."""
QUANTILES = (0.1, 0.5, 0.9)


class ResidualOrder(Order):
    """The base order's keys with a per-request correction in log space: ``key * exp(-c * sign(key))``.

    A positive ``c`` raises a request's priority by the factor ``e**c`` (lower keys run first); ``c = 0``
    returns the base keys unchanged. ``correction`` is indexed by request id and set by :class:`ResidualEnv`.
    """

    def __init__(self, base: Order):
        self.base = base
        self.dynamic = base.dynamic
        self.requires_oracle = base.requires_oracle
        self.correction = np.zeros(0)

    def reset(self, sim: Simulator) -> None:
        self.base.reset(sim)
        self.correction = np.zeros(sim.num_requests)

    def observe(self, sim: Simulator, events) -> None:
        self.base.observe(sim, events)

    def keys(self, sim: Simulator, ids: np.ndarray) -> np.ndarray:
        keys = self.base.keys(sim, ids)
        correction = self.correction[ids]
        if not correction.any():
            return keys
        return keys * np.exp(-correction * np.sign(keys))


def residual_scheduler(base: str | BatchBuilderScheduler) -> BatchBuilderScheduler:
    """The base heuristic (a ``baselines.SCHEDULERS`` name or an instance) with its order wrapped in a
    :class:`ResidualOrder`; a clear error for a scheduler that is not a ranking batch builder."""
    scheduler = make_scheduler(base) if isinstance(base, str) else base
    if not isinstance(scheduler, BatchBuilderScheduler):
        ranking = sorted(name for name, cls in SCHEDULERS.items() if issubclass(cls, BatchBuilderScheduler))
        raise ValueError(f"the residual policy needs a ranking heuristic (a BatchBuilderScheduler), got "
                         f"{type(scheduler).__name__}; ranking heuristics: {', '.join(ranking)}")
    if not isinstance(scheduler.order, ResidualOrder):
        scheduler.order = ResidualOrder(scheduler.order)
    return scheduler


class ResidualEnv(gym.Wrapper):
    """An InferMax env driven by a base heuristic whose ranking the agent corrects.

    :param env: an InferMax env (any action mode: the corrected heuristic's decisions go through ``env.launch``).
    :param base: the ranking heuristic (a ``baselines.SCHEDULERS`` name or a :class:`BatchBuilderScheduler`).
    :param window: K, the slots the agent sees and corrects (the first K of the env's window).
    :param correction_scale: an action of 1 multiplies a request's priority by ``e**correction_scale``.

    Action: ``Box(-1, 1, (K,))``, one correction per slot (padding slots ignored); a request keeps its last
    correction while it is outside the window. Reward: the env's (minus the latency area of the iteration, or
    the batch time), summed over the sub-steps of the iteration.
    """

    def __init__(self, env: gym.Env, base: str | BatchBuilderScheduler = "sagesched", window: int | None = None,
                 correction_scale: float = 2.0):
        super().__init__(env)
        inner = env.unwrapped
        k = inner.config.window if window is None else window
        if not 1 <= k <= inner.config.window:
            raise ValueError(f"window must be in [1, {inner.config.window}] (the env's window), got {window!r}")
        if not correction_scale > 0:
            raise ValueError(f"correction_scale must be positive, got {correction_scale!r}")
        self.scheduler = residual_scheduler(base)
        self._base = base
        self.base_name = base if isinstance(base, str) else type(base).__name__
        self.k = k
        self.correction_scale = float(correction_scale)
        self.features = OutputLengthPredictor()
        requests = inner.observation_space["requests"]
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({
            "requests": gym.spaces.Box(0.0, 1.0, shape=(k, requests.shape[1] + len(EXTRA_FEATURES)), dtype=np.float32),
            "slot_mask": gym.spaces.Box(0, 1, shape=(k,), dtype=np.int8),
            "global": inner.observation_space["global"],
        })

    @property
    def order(self) -> ResidualOrder:
        return self.scheduler.order

    def base_metrics(self, workload) -> dict[str, float]:
        """Metric summary of a fresh base heuristic serving ``workload`` on a simulator configured like the env
        (what a zero correction reproduces)."""
        if not isinstance(self._base, str):
            raise ValueError("base_metrics needs the base heuristic by name")
        cfg = self.env.unwrapped.config
        sim = Simulator(workload, cfg.cost_model, cfg.engine, oracle=cfg.oracle, oversized=cfg.oversized)
        return dict(sim.run(make_scheduler(self._base)).summary)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        sim = self.env.unwrapped.sim
        self.scheduler.reset(sim)
        self.features.reset()
        return self._observation(obs), info

    def step(self, action):
        inner = self.env.unwrapped
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.k,):
            raise ValueError(f"residual action must have shape ({self.k},), got {action.shape}")
        if not np.isfinite(action).all():
            raise ValueError(f"residual action must be finite, got {action.tolist()}")
        window = inner.window
        n = min(window.count, self.k)
        self.order.correction[window.ids[:n]] = np.clip(action[:n], -1.0, 1.0) * self.correction_scale
        obs, reward, terminated, truncated, info = inner.launch(self.scheduler.decide(inner.sim))
        return self._observation(obs), reward, terminated, truncated, info

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inner = self.env.unwrapped
        sim, window, k = inner.sim, inner.window, self.k
        n = min(window.count, k)
        extra = np.zeros((k, len(EXTRA_FEATURES)), dtype=np.float32)
        if n:
            ids = window.ids[:n]
            distribution = self.features.distribution(sim, ids)
            generated = sim.generated[ids]
            for j, q in enumerate(QUANTILES):
                remaining = np.maximum(distribution.quantile(q) - generated, 0.0)
                extra[:n, j] = inner.builder.scaled_tokens(remaining)
            index = gittins_index(distribution, sim.prompt_len[ids], generated, sim.config.token_budget,
                                  sim.config.kv_capacity)
            extra[:n, -1] = index / (1.0 + index)
        return {"requests": np.concatenate([obs["requests"][:k], extra], axis=1),
                "slot_mask": obs["slot_mask"][:k].copy(), "global": obs["global"]}


def make_residual_env(env_id: str = "InferMax-v0", base: str = "sagesched", window: int = 256,
                      correction_scale: float = 2.0, **env_kwargs: Any) -> ResidualEnv:
    """``gym.make(env_id, window=window, **env_kwargs)`` wrapped in a :class:`ResidualEnv`: the agent sees and
    corrects the first ``window`` slots; the heuristic's decisions may touch any request."""
    if "window" in env_kwargs:
        raise ValueError("make_residual_env sets the env's 'window' itself; pass window= instead")
    return ResidualEnv(gym.make(env_id, window=window, **env_kwargs), base, window=window,
                       correction_scale=correction_scale)


RESIDUAL_POLICY_KWARGS = {"features_extractor_kwargs": {"embed_dim": 32, "num_heads": 0}, "score_hidden": 32,
                          "log_std_init": -1.0}
"""A small slot-scoring policy (deep sets, no attention): cheap enough for 256 slots on a CPU."""


def zero_correction_head(model) -> None:
    """Zero the last layer of the per-slot scorer of a slot-scoring policy: the mean correction is then exactly
    0 for every observation (the base heuristic), while the rest of the network keeps its random init."""
    last = model.policy.mlp_extractor.output_layers()[0]
    with th.no_grad():
        last.weight.zero_()
        last.bias.zero_()


RESIDUAL_ENV_ID = "InferMaxResidual-v0"
"""Registered on import of this module; ``gym.make("agents.residual:InferMaxResidual-v0", base=..., window=...,
oracle=False)`` imports it first, so a saved residual agent's metadata rebuilds its env in train.py."""
if RESIDUAL_ENV_ID not in gym.registry:
    gym.register(RESIDUAL_ENV_ID, entry_point=make_residual_env, disable_env_checker=True)


def correction_is_zero(model) -> bool:
    """Whether the policy's mean correction is exactly 0 for every observation (its scorer's last layer is
    zero, as :func:`zero_correction_head` leaves it): the agent then acts exactly as its base heuristic."""
    last = model.policy.mlp_extractor.output_layers()[0]
    return not (last.weight.any() or last.bias.any())


__all__ = ["EXTRA_FEATURES", "RESIDUAL_ENV_ID", "RESIDUAL_POLICY_KWARGS", "ResidualEnv", "ResidualOrder", "correction_is_zero",
           "make_residual_env", "residual_scheduler", "zero_correction_head"]
