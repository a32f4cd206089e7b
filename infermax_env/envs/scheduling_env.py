"""The Gymnasium environment: each step is one scheduling iteration of :class:`infermax_env.Simulator`.

The env is a thin adapter: it shows the agent K request slots (:mod:`.observation`), turns its action into a
feasible :class:`Decision` (:mod:`.actions`), and hands that decision to ``Simulator.step``, which prices the
batch with the cost model and advances the clock. No step semantics live here.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import WorkloadError
from ..metrics import Objective, compute_metrics, objective_value
from ..schedulers import resolve_scheduler
from ..simulator import Decision, Simulator, StepResult
from ..workload import Workload
from .actions import ActionMode, NotExpressibleError, Repairs, make_action_mode
from .config import EnvConfig, build_config
from .observation import GLOBAL_FEATURES, REQUEST_FEATURES, ObservationBuilder
from .window import Window

RESET_OPTIONS = ("workload",)


class InferMaxEnv(gym.Env):
    """LLM inference scheduling as a Gymnasium env (registered as ``InferMax-v0`` and ``InferMax-Tiny-v0``).

    :param preset: ``"default"`` (InferMax-v0) or ``"tiny"`` (InferMax-Tiny-v0); see :mod:`.config`.
    :param render_mode: ``None``, ``"ansi"`` (text view of the last batch, memory and the window), ``"human"``
        (that text printed to stdout at every reset and launch) or ``"rgb_array"`` (the schedule timeline and
        KV-memory plot of the episode so far).
    :param kwargs: overrides of the preset, see :func:`~infermax_env.envs.config.build_config`: ``model``,
        ``gpu``, ``tensor_parallel``, ``cost_model``, ``workload``, ``setting``, ``kv_capacity`` (M),
        ``token_budget`` (C), ``max_batch_size``, ``block_size``, ``window`` (K), ``objective``,
        ``action_mode``, ``oracle``, ``predictor``, ``reward_scale``, ``reference``, ``strict``,
        ``invalid_action_penalty``, ``oversized``.

    Observation: a Dict of Box arrays: ``requests`` (K, F) float32 with the features named in
    :data:`REQUEST_FEATURES`, ``slot_mask`` (K,) int8, ``global`` (G,) float32 named in
    :data:`GLOBAL_FEATURES`, ``action_mask`` int8 (the flattened mask of the action mode).

    Reward: with ``objective="latency"`` minus the integral over the step of the number of requests in the
    system, so the undiscounted episode return is minus the sum of TTLT; with ``"gpu_time"`` minus the batch
    time, so the return is minus the total GPU time. Both are multiplied by ``reward_scale`` and divided by the
    reference scheduler's objective on the same workload when ``reference`` is set; masked choices and
    livelock repairs cost ``invalid_action_penalty`` each.
    """

    metadata = {"render_modes": ["human", "ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, preset: str = "default", render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.config: EnvConfig = build_config(preset, **kwargs)
        cfg = self.config
        k = cfg.window
        self.mode: ActionMode = make_action_mode(cfg.action_mode, k, cfg.strict)
        self.action_space = self.mode.space
        self.observation_space = gym.spaces.Dict({
            "requests": gym.spaces.Box(0.0, 1.0, shape=(k, len(REQUEST_FEATURES)), dtype=np.float32),
            "slot_mask": gym.spaces.Box(0, 1, shape=(k,), dtype=np.int8),
            "global": gym.spaces.Box(0.0, 1.0, shape=(len(GLOBAL_FEATURES),), dtype=np.float32),
            "action_mask": gym.spaces.Box(0, 1, shape=(self.mode.mask_size,), dtype=np.int8),
        })
        self.builder = ObservationBuilder(cfg.engine, cfg.cost_model, k, cfg.oracle, cfg.predictor)
        self._reward_factor = -cfg.reward_scale
        self._latency = Objective.parse(cfg.objective) is Objective.LATENCY
        self.sim: Simulator | None = None
        self.window = Window(k)
        self.pending = None
        self.episode = 0
        self.reference_objective: float | None = None
        self._mask = np.zeros(self.mode.mask_size, dtype=bool)
        self._last: StepResult | None = None

    # ---- Gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode on ``options["workload"]`` if given, else on a workload drawn from ``np_random``
        (seeded by ``seed``: ``reset(seed=s)`` serves ``generator(np.random.default_rng(s))``)."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: {list(RESET_OPTIONS)}")
        workload = options.get("workload")
        if workload is None:
            workload = self.config.draw_workload(self.np_random)
        elif not isinstance(workload, Workload):
            raise ValueError(f"options['workload'] must be a Workload, got {type(workload).__name__}")
        cfg = self.config
        self.sim = Simulator(workload, cfg.cost_model, cfg.engine, oracle=cfg.oracle, oversized=cfg.oversized,
                             breakdown=True)
        if self.sim.done:
            raise WorkloadError(f"workload {workload.name!r} has no request to serve (all {len(workload)} rejected)")
        self.builder.start_episode(self.sim)
        if cfg.predictor is not None and callable(getattr(cfg.predictor, "reset", None)):
            cfg.predictor.reset(self.sim)
        self.reference_objective = self._reference_objective(workload)
        self._reward_factor = -cfg.reward_scale / (self.reference_objective or 1.0)
        self.episode += 1
        self._last = None
        self._new_iteration()
        observation = self._observe()
        info = {"action_mask": self._mask, "workload_source": cfg.workload_source, "num_requests": len(workload)}
        if self.reference_objective is not None:
            info["reference_objective"] = self.reference_objective
        if self.render_mode == "human":
            print(self._render_text())
        return observation, info

    def step(self, action):
        sim = self.sim
        if sim is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if sim.done:
            raise gym.error.ResetNeeded("the episode is over (every request finished): call reset()")
        decision, repairs = self.mode.act(action, sim, self.window, self.pending)
        penalty = self.config.invalid_action_penalty * (repairs.invalid + repairs.livelock)
        if decision is None:  # sequential mode: the batch is still being built
            observation = self._observe()
            return observation, -penalty, False, False, {"action_mask": self._mask, "launched": False,
                                                         "repairs": repairs.as_dict()}
        return self._launch(decision, penalty, repairs)

    def launch(self, decision: Decision):
        """Launch a complete ``decision`` (e.g. a heuristic's) in any action mode and return ``step``'s tuple.

        This is the step the actions of :meth:`decision_to_actions` would take, without encoding them: the decision
        may touch any request (not only the window's) and it costs one observation instead of one per
        sequential sub-step. ``Simulator.step`` checks it (``InfeasibleDecisionError`` naming the violated
        constraint); it must come at an iteration boundary (not in a half-built sequential batch).
        """
        sim = self.sim
        if sim is None:
            raise gym.error.ResetNeeded("call reset() before launch()")
        if sim.done:
            raise gym.error.ResetNeeded("the episode is over (every request finished): call reset()")
        if not isinstance(decision, Decision):
            raise TypeError(f"launch() needs a Decision, got {type(decision).__name__}")
        self._require_iteration_boundary()
        return self._launch(decision, 0.0, Repairs())

    def _launch(self, decision: Decision, penalty: float, repairs: Repairs):
        sim = self.sim
        result = sim.step(decision)
        cost = result.latency_area if self._latency else result.batch_time
        reward = cost * self._reward_factor - penalty
        self._last = result
        self._new_iteration()
        observation = self._observe()
        if self.render_mode == "human":
            print(self._render_text())
        return observation, reward, sim.done, False, self._step_info(result, repairs)

    def render(self):
        """The ``"ansi"`` text or the ``"rgb_array"`` image of the current state; ``"human"`` mode prints the text
        by itself at every reset and launch (render() then returns None)."""
        if self.render_mode in (None, "human"):
            if self.render_mode is None:
                gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.sim is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        return self._render_text() if self.render_mode == "ansi" else self._render_image()

    # ---- agent-facing helpers --------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Boolean mask of allowed choices (for sb3-contrib's MaskablePPO); same as ``obs["action_mask"]``."""
        return self._mask.copy()

    @property
    def last_result(self) -> StepResult | None:
        """What the last launched iteration of this episode did (None before the first)."""
        return self._last

    @property
    def slot_ids(self) -> np.ndarray:
        """The request id (workload position) in each slot, -1 for an empty slot."""
        if self.sim is None:
            raise gym.error.ResetNeeded("call reset() first")
        return self.window.ids.copy()

    def decision_to_actions(self, decision: Decision) -> list:
        """The action(s) that make the env launch exactly ``decision`` from the current state (one action in
        the select and priority modes; evictions, adds and the launch in the sequential mode). Raises
        :class:`NotExpressibleError` when the mode cannot express it."""
        if self.sim is None:
            raise gym.error.ResetNeeded("call reset() first")
        self._require_iteration_boundary()
        return self.mode.encode(decision, self.sim, self.window)

    def decision_to_action(self, decision: Decision):
        """The single action for ``decision`` (select and priority modes); see :meth:`decision_to_actions`."""
        actions = self.decision_to_actions(decision)
        if len(actions) != 1:
            raise NotExpressibleError(f"{self.mode.name} mode needs {len(actions)} actions for one decision; "
                                      f"use decision_to_actions()")
        return actions[0]

    # ---- internals -------------------------------------------------------------------------------
    def _require_iteration_boundary(self) -> None:
        if self.pending is not None and (self.pending.count or self.pending.evict.any()):
            raise NotExpressibleError("a sequential batch is half built; pass whole decisions at iteration boundaries")

    def _new_iteration(self) -> None:
        self.window.refresh(self.sim)
        self.pending = self.mode.new_pending(self.sim, self.window)

    def _observe(self) -> dict[str, np.ndarray]:
        sim, win, pending = self.sim, self.window, self.pending
        self._mask = self.mode.mask(sim, win, pending)
        requests, slot_mask, global_features = self.builder.observe(sim, win, pending)
        return {"requests": requests, "slot_mask": slot_mask, "global": global_features,
                "action_mask": self._mask.astype(np.int8)}

    def _step_info(self, result: StepResult, repairs: Repairs) -> dict[str, Any]:
        info: dict[str, Any] = {
            "action_mask": self._mask, "launched": True, "batch": result.decision.as_dict(),
            "batch_time": result.batch_time, "idle_time": result.idle_time, "latency_area": result.latency_area,
            "breakdown": result.breakdown, "repairs": repairs.as_dict(),
        }
        if self.sim.done:
            metrics = compute_metrics(self.sim)
            info["metrics"] = dict(metrics.summary)
            info["objective"] = objective_value(metrics, self.config.objective)
            if self.reference_objective is not None:
                info["reference_objective"] = self.reference_objective
        return info

    def _reference_objective(self, workload: Workload) -> float | None:
        cfg = self.config
        if cfg.reference is None:
            return None
        sim = Simulator(workload, cfg.cost_model, cfg.engine, oracle=cfg.oracle, oversized=cfg.oversized)
        value = objective_value(sim.run(resolve_scheduler(cfg.reference)), cfg.objective)
        if not value > 0:
            raise ValueError(f"the reference scheduler's {cfg.objective} objective is {value!r}; it must be positive")
        return value

    def _render_text(self) -> str:
        sim, win = self.sim, self.window
        cfg = sim.config
        used = sim.kv_blocks_used * cfg.block_size
        filled = int(round(40 * sim.kv_blocks_used / cfg.num_blocks))
        lines = [
            f"InferMax [{self.config.preset}/{self.mode.name}] clock {sim.clock:.4f} s, iteration "
            f"{sim.num_iterations}, finished {sim.num_done}/{sim.num_requests}",
            f"KV [{'#' * filled}{'.' * (40 - filled)}] {used}/{cfg.kv_capacity} tokens | waiting "
            f"{len(sim.waiting)}, resident {len(sim.resident)}, beyond window {win.num_beyond}",
        ]
        if self._last is not None:
            result = self._last
            decision = result.decision
            runs = ", ".join(f"r{r}+{t}" for r, t in zip(decision.run_ids.tolist(), decision.run_tokens.tolist()))
            lines.append(f"last batch ({result.batch_time * 1e3:.2f} ms): run {runs or '-'}; evict "
                         f"{decision.evict_ids.tolist() or '-'}")
        lines.append("slot  request  state      need     kv")
        for slot in range(win.count):
            state = "decode" if win.decoding[slot] else ("prefill" if slot < win.num_resident else "waiting")
            lines.append(f"{slot:>4}  {win.ids[slot]:>7}  {state:<8} {win.need[slot]:>6} {win.kv[slot]:>6}")
        return "\n".join(lines)

    def _render_image(self) -> np.ndarray:
        import matplotlib.pyplot as plt

        from ..plotting import schedule_figure

        figure = schedule_figure(self.sim)
        try:
            figure.canvas.draw()
            return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
        finally:
            plt.close(figure)
