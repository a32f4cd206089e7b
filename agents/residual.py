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


class ReservationResidualEnv(gym.Wrapper):
    """An InferMax env driven by a reservation-based heuristic whose admission reservation the agent sets each
    iteration: a one-number residual, where :class:`ResidualEnv` corrects every request's rank.

    :param env: an InferMax env (the corrected heuristic's decisions go through ``env.launch``).
    :param base: a ``baselines.SCHEDULERS`` name (or instance) whose ``reservation`` has a ``quantile`` (SageSched,
        "tuned").
    :param span: an action ``a`` in [-1, 1] reserves the base quantile ``+ span * a`` of the predicted output
        length (rounded to 0.01, kept in [0.05, 0.99]); ``a = 0`` is the base heuristic exactly.

    Observation: the env's ``global`` features (memory, queue, arrivals, clock). Reward: the env's.
    """

    def __init__(self, env: gym.Env, base: str | BatchBuilderScheduler = "tuned", span: float = 0.15):
        super().__init__(env)
        scheduler = make_scheduler(base) if isinstance(base, str) else base
        quantile = getattr(getattr(scheduler, "reservation", None), "quantile", None)
        if quantile is None:
            raise ValueError(f"the reservation residual needs a heuristic with a predicted-quantile reservation "
                             f"(sagesched, tuned), got {type(scheduler).__name__}")
        if not 0 < span < 1:
            raise ValueError(f"span must be in (0, 1), got {span!r}")
        self.scheduler, self.base_quantile, self.span = scheduler, float(quantile), float(span)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({"global": env.unwrapped.observation_space["global"]})

    def quantile(self, action: float) -> float:
        """The reservation quantile an action sets (the base quantile for 0)."""
        shift = round(self.span * float(np.clip(action, -1.0, 1.0)), 2)
        return self.base_quantile if shift == 0 else float(np.clip(self.base_quantile + shift, 0.05, 0.99))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.scheduler.reset(self.env.unwrapped.sim)
        return {"global": obs["global"]}, info

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape or not np.isfinite(action).all():
            raise ValueError(f"{type(self).__name__} action must be {self.action_space.shape[0]} finite number(s), "
                             f"got {action.tolist()}")
        self.apply(np.clip(action, -1.0, 1.0))
        inner = self.env.unwrapped
        obs, reward, terminated, truncated, info = inner.launch(self.scheduler.decide(inner.sim))
        return {"global": obs["global"]}, reward, terminated, truncated, info

    def apply(self, action: np.ndarray) -> None:
        """Set the heuristic's knobs for the next decision from a clipped action."""
        self.scheduler.reservation.quantile = self.quantile(action[0])


class FormulaResidualEnv(ReservationResidualEnv):
    """:class:`ReservationResidualEnv` on "tuned" whose action also shifts the priority formula's weights each
    iteration: ``w_kv``, ``w_age`` and ``w_preempt`` (:mod:`baselines.tuned`) by :data:`WEIGHT_SPANS` times actions
    2-4 (zero = the tuned weights exactly)."""

    WEIGHT_SPANS = {"w_kv": 0.5, "w_age": 0.5, "w_preempt": 1.0}

    def __init__(self, env: gym.Env, base: str | BatchBuilderScheduler = "tuned", span: float = 0.15):
        super().__init__(env, base, span)
        order = self.scheduler.order
        if not all(hasattr(order, name) for name in self.WEIGHT_SPANS):
            raise ValueError(f"the formula residual needs the tuned heuristic's formula order (weights "
                             f"{list(self.WEIGHT_SPANS)}), got {type(order).__name__}")
        self.base_weights = {name: float(getattr(order, name)) for name in self.WEIGHT_SPANS}
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1 + len(self.WEIGHT_SPANS),), dtype=np.float32)

    def apply(self, action: np.ndarray) -> None:
        super().apply(action)
        for (name, span), value in zip(self.WEIGHT_SPANS.items(), action[1:]):
            setattr(self.scheduler.order, name, self.base_weights[name] + span * float(value))


def base_metrics(env: gym.Env, base: str, workload) -> dict[str, float]:
    """Metric summary of heuristic ``base`` serving ``workload`` on a simulator configured like ``env`` (what a
    residual agent on that base reproduces at zero correction)."""
    cfg = env.unwrapped.config
    sim = Simulator(workload, cfg.cost_model, cfg.engine, oracle=cfg.oracle, oversized=cfg.oversized)
    return dict(sim.run(make_scheduler(base)).summary)


CONTROLS = ("ranking", "reservation", "formula")
"""What a residual agent corrects: every request's rank (:class:`ResidualEnv`), the admission reservation
(:class:`ReservationResidualEnv`) or the reservation and tuned's formula weights (:class:`FormulaResidualEnv`)."""


def make_residual_env(env_id: str = "InferMax-v0", base: str = "sagesched", window: int = 256,
                      correction_scale: float = 2.0, control: str = "ranking", span: float = 0.15,
                      **env_kwargs: Any) -> gym.Wrapper:
    """``gym.make(env_id, window=window, **env_kwargs)`` wrapped in a :class:`ResidualEnv` (``control="ranking"``:
    the agent sees and corrects the first ``window`` slots), a :class:`ReservationResidualEnv`
    (``"reservation"``) or a :class:`FormulaResidualEnv` (``"formula"``); the heuristic's decisions may touch any
    request."""
    if "window" in env_kwargs:
        raise ValueError("make_residual_env sets the env's 'window' itself; pass window= instead")
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    env = gym.make(env_id, window=window, **env_kwargs)
    if control == "reservation":
        return ReservationResidualEnv(env, base, span=span)
    if control == "formula":
        return FormulaResidualEnv(env, base, span=span)
    return ResidualEnv(env, base, window=window, correction_scale=correction_scale)


RESIDUAL_POLICY_KWARGS = {"features_extractor_kwargs": {"embed_dim": 32, "num_heads": 0}, "score_hidden": 32,
                          "log_std_init": -1.0}
"""A small slot-scoring policy (deep sets, no attention): cheap enough for 256 slots on a CPU."""


RESERVATION_POLICY_KWARGS = {"net_arch": [64, 64], "log_std_init": -1.0}
"""A small MLP on the global features for the reservation residual."""


def correction_layer(model) -> th.nn.Linear:
    """The layer whose output is the mean correction: the per-slot scorer's last layer of a slot-scoring policy,
    the action head of an MLP policy."""
    extractor = model.policy.mlp_extractor
    return extractor.output_layers()[0] if hasattr(extractor, "output_layers") else model.policy.action_net


def zero_correction_head(model) -> None:
    """Zero the :func:`correction_layer`: the mean correction is then exactly 0 for every observation (the base
    heuristic), while the rest of the network keeps its random init."""
    last = correction_layer(model)
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
    last = correction_layer(model)
    return not (last.weight.any() or last.bias.any())


__all__ = ["CONTROLS", "base_metrics", "EXTRA_FEATURES", "RESERVATION_POLICY_KWARGS", "RESIDUAL_ENV_ID", "RESIDUAL_POLICY_KWARGS",
           "FormulaResidualEnv", "ReservationResidualEnv", "ResidualEnv", "ResidualOrder", "correction_is_zero", "correction_layer",
           "make_residual_env", "residual_scheduler", "zero_correction_head"]
