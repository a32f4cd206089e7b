"""What an InferMax env serves and under which limits: the two registered presets and their keyword overrides.

Every keyword accepted by ``gymnasium.make("InferMax-v0", **kwargs)`` / ``gymnasium.make("InferMax-Tiny-v0",
**kwargs)`` lands in :func:`build_config`, which starts from the preset and applies the overrides. The result,
an :class:`EnvConfig`, is frozen for the env's lifetime: spaces are declared once from it.

Presets:

* ``"default"`` (``InferMax-v0``): Llama-3-70B, tensor parallel 4 on A100 80GB, :class:`LinearCostModel`
  (INFERMAX's fit), INFERMAX's engine limits M = 100,000 KV tokens and C = 16,384 tokens per batch, no batch
  size cap, block size 1. Each episode is a window of 256 consecutive requests of the Azure 2023
  conversation trace replayed at its own rate (5.5 req/s), where memory contends (docs/env.md). When
  the trace file is absent, a :class:`SyntheticGenerator` with Poisson arrivals at 5.5 req/s and lognormal
  lengths matching the conv trace's median and mean (prompt median 1,020, mean 1,155; output median 129,
  mean 211) is used instead; ``EnvConfig.workload_source`` and ``info["workload_source"]`` say which.
* ``"tiny"`` (``InferMax-Tiny-v0``): :func:`infermax_env.instances.tiny_setting` unchanged: 4-12 offline
  requests, prompts 2-16, outputs 1-8, M = 48, C = 32, at most 8 requests per batch, LinearCostModel. The
  optimal solver and the evaluation code draw the same instances from the same seeds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Union

import numpy as np

from ..cost.base import CostModel
from ..cost.linear import LinearCostModel
from ..deployment import Deployment, EngineConfig
from ..errors import WorkloadError
from ..instances import INFERMAX_ENGINE, ProblemSetting, tiny_setting
from ..metrics import Objective
from ..simulator import Scheduler
from ..workload import (LogNormal, SyntheticGenerator, TraceWindowGenerator, Workload, default_trace_dir,
                        load_azure_trace)
from .actions import ACTION_MODE_CLASSES

ACTION_MODES = tuple(ACTION_MODE_CLASSES)

DEFAULT_MODEL = "llama-3-70b"
DEFAULT_GPU = "a100-80gb"
DEFAULT_TENSOR_PARALLEL = 4
DEFAULT_REQUESTS_PER_EPISODE = 256
CONV_TRACE_RATE = 5.5
"""Requests per second of the Azure 2023 conversation trace."""
CONV_PROMPT = LogNormal(median=1020, sigma=math.sqrt(2 * math.log(1155 / 1020)), max_len=14_050)
CONV_OUTPUT = LogNormal(median=129, sigma=math.sqrt(2 * math.log(211 / 129)), max_len=1_000)
"""Lognormal lengths with the conv trace's median and mean (mean / median = exp(sigma^2 / 2))."""

PRESET_WINDOWS = {"default": 64, "tiny": 12}
PRESET_MAX_EPISODE_STEPS = {"default": 100_000, "tiny": 2_000}


class PredictorHook(Protocol):
    """What the env's ``predictor`` must provide: predicted total output length (tokens) of each request in
    ``ids`` (e.g. :class:`baselines.predictor.OutputLengthPredictor`).

    ``reset(sim)``, when the object has it, is called at the start of every episode.
    """

    def predict(self, sim: Any, ids: np.ndarray) -> np.ndarray:
        ...


WorkloadSource = Union[Workload, Callable[[np.random.Generator], Workload]]
ReferenceScheduler = Union[str, Scheduler, Callable[[], Scheduler]]


@dataclass(frozen=True)
class EnvConfig:
    """Everything an env instance is built from (see the module docstring for the presets).

    Attributes:
        workload: a fixed :class:`Workload` served every episode, or a generator ``rng -> Workload`` drawn
            from the env's ``np_random`` at each reset.
        workload_source: a human-readable description of ``workload`` (reported in ``info``).
        engine: M, C, max batch size and block size.
        cost_model: prices each batch.
        model, gpu, tensor_parallel: the deployment the cost model and (when derived) M describe.
        objective: ``"latency"`` (sum of TTLT) or ``"gpu_time"`` (total GPU time).
        window: K, the number of request slots in the observation and the action.
        action_mode: ``"select"``, ``"priority"`` or ``"sequential"``.
        oracle: whether true output lengths are observable (feature ``true_output_len``; oracle schedulers).
        predictor: optional :class:`PredictorHook` feeding ``predicted_output_len``.
        reward_scale: every reward is multiplied by it.
        reference: a scheduler, a factory of one (e.g. a scheduler class) or a name registered in
            :mod:`infermax_env.schedulers` (``import baselines`` registers ``"vllm"`` and the other heuristics),
            whose objective on the episode's workload divides every reward (CompilerGym-style normalisation);
            ``None`` for raw rewards.
        strict: raise :class:`InvalidActionError` on masked choices instead of repairing them.
        invalid_action_penalty: subtracted from the reward per masked choice or livelock repair.
        oversized: the simulator's policy for requests whose KV can never fit (``"error"`` or ``"reject"``).
    """

    workload: WorkloadSource
    workload_source: str
    engine: EngineConfig
    cost_model: CostModel
    model: str = DEFAULT_MODEL
    gpu: str = DEFAULT_GPU
    tensor_parallel: int = DEFAULT_TENSOR_PARALLEL
    objective: str = "latency"
    window: int = 64
    action_mode: str = "select"
    oracle: bool = False
    predictor: PredictorHook | None = None
    reward_scale: float = 1.0
    reference: ReferenceScheduler | None = None
    strict: bool = False
    invalid_action_penalty: float = 0.0
    oversized: str = "error"
    preset: str = field(default="default", compare=False)

    def __post_init__(self) -> None:
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        Objective.parse(self.objective)
        if not isinstance(self.window, (int, np.integer)) or isinstance(self.window, bool) or self.window < 1:
            raise ValueError(f"window (K) must be a positive integer, got {self.window!r}")
        if not (isinstance(self.reward_scale, (int, float)) and math.isfinite(self.reward_scale)
                and self.reward_scale > 0):
            raise ValueError(f"reward_scale must be a positive finite number, got {self.reward_scale!r}")
        if not (isinstance(self.invalid_action_penalty, (int, float)) and self.invalid_action_penalty >= 0):
            raise ValueError(f"invalid_action_penalty must be a number >= 0, got {self.invalid_action_penalty!r}")
        if not isinstance(self.workload, Workload) and not callable(self.workload):
            raise ValueError(f"workload must be a Workload or a callable rng -> Workload, got "
                             f"{type(self.workload).__name__}")
        if not isinstance(self.cost_model, CostModel):
            raise ValueError(f"cost_model must be a CostModel, got {type(self.cost_model).__name__}")
        if self.predictor is not None and not callable(getattr(self.predictor, "predict", None)):
            raise ValueError(f"predictor must have a predict(sim, ids) method, got {type(self.predictor).__name__}")
        if self.oversized not in ("error", "reject"):
            raise ValueError(f"oversized must be 'error' or 'reject', got {self.oversized!r}")
        if self.reference is not None and not isinstance(self.reference, str) and not callable(self.reference) \
                and not callable(getattr(self.reference, "decide", None)):
            raise ValueError(f"reference must be a scheduler name, a scheduler (with decide(sim)) or a factory of "
                             f"one, got {self.reference!r}")

    def draw_workload(self, rng: np.random.Generator) -> Workload:
        """The episode's workload: the fixed one, or a fresh draw from ``rng``."""
        if isinstance(self.workload, Workload):
            return self.workload
        workload = self.workload(rng)
        if not isinstance(workload, Workload):
            raise WorkloadError(f"the workload generator returned {type(workload).__name__}, not a Workload")
        return workload


@functools.lru_cache(maxsize=2)
def _conv_trace(directory: str) -> Workload:
    return load_azure_trace("conv", directory)


def conv_workload_generator(num_requests: int = DEFAULT_REQUESTS_PER_EPISODE,
                            rate_scale: float = 1.0) -> tuple[Callable[[np.random.Generator], Workload], str]:
    """InferMax-v0's generator and its description: windows of the Azure conv trace, or the synthetic
    stand-in with the trace's rate and length statistics when the trace is absent."""
    directory = default_trace_dir()
    if directory is not None and (directory / "azure_conv_2023.csv").is_file():
        generator = TraceWindowGenerator(_conv_trace(str(directory)), num_requests, rate_scale)
        return generator, (f"azure-conv trace windows of {num_requests} requests at {rate_scale:g}x the trace rate "
                           f"({directory})")
    generator = SyntheticGenerator(num_requests=num_requests, prompt=CONV_PROMPT, output=CONV_OUTPUT,
                                   arrival="poisson", rate=CONV_TRACE_RATE * rate_scale, name="conv-synthetic")
    return generator, (f"synthetic stand-in for the azure-conv trace (trace file absent): {num_requests} requests, "
                       f"Poisson at {CONV_TRACE_RATE * rate_scale:g} req/s, lognormal lengths with the trace's "
                       f"median and mean")


def resolve_cost_model(cost_model: CostModel | str, model: str, gpu: str, tensor_parallel: int) -> CostModel:
    """A :class:`CostModel` from an instance or a name: ``"linear"`` (INFERMAX's Llama-3-70B TP4 A100 fit,
    only valid for that deployment) or ``"roofline"`` (any registered model and GPU)."""
    if isinstance(cost_model, CostModel):
        return cost_model
    if cost_model == "linear":
        if (model, gpu, tensor_parallel) != (DEFAULT_MODEL, DEFAULT_GPU, DEFAULT_TENSOR_PARALLEL):
            raise ValueError(
                f"cost_model='linear' uses INFERMAX's coefficients fitted for {DEFAULT_MODEL} TP "
                f"{DEFAULT_TENSOR_PARALLEL} on {DEFAULT_GPU}, not {model} TP {tensor_parallel} on {gpu}; pass "
                f"cost_model='roofline' or a CostModel instance (e.g. LinearCostModel(coefficients))")
        return LinearCostModel()
    if cost_model == "roofline":
        from ..cost.roofline import RooflineCostModel

        return RooflineCostModel(model, gpu, tensor_parallel)
    raise ValueError(f"cost_model must be a CostModel instance, 'linear' or 'roofline'; got {cost_model!r}")


def build_config(preset: str = "default", *, setting: ProblemSetting | None = None,
                 workload: WorkloadSource | None = None, model: str = DEFAULT_MODEL, gpu: str = DEFAULT_GPU,
                 tensor_parallel: int = DEFAULT_TENSOR_PARALLEL, cost_model: CostModel | str | None = None,
                 kv_capacity: int | str | None = None, token_budget: int | None = None,
                 max_batch_size: int | None = None, block_size: int | None = None, window: int | None = None,
                 **options: Any) -> EnvConfig:
    """The preset with keyword overrides applied (``None`` keeps the preset's value).

    Args:
        preset: ``"default"`` (InferMax-v0) or ``"tiny"`` (InferMax-Tiny-v0).
        setting: a :class:`ProblemSetting` replacing the preset's generator, engine and cost model at once.
        workload: a fixed :class:`Workload` or a generator ``rng -> Workload``.
        model, gpu, tensor_parallel: the deployment. Changing it from Llama-3-70B TP 4 on A100 80GB switches
            the default cost model to ``"roofline"`` (the linear fit is for that deployment only).
        cost_model: a :class:`CostModel`, ``"linear"`` or ``"roofline"``.
        kv_capacity: M in tokens, or ``"deployment"`` to derive it from the deployment's free GPU memory.
        token_budget, max_batch_size, block_size: C and the other engine limits.
        window: K.
        options: the remaining :class:`EnvConfig` fields (objective, action_mode, oracle, predictor,
            reward_scale, reference, strict, invalid_action_penalty, oversized).
    """
    if preset not in PRESET_WINDOWS:
        raise ValueError(f"preset must be one of {sorted(PRESET_WINDOWS)}, got {preset!r}")
    if setting is not None:
        description = f"problem setting {setting.name!r}"
    elif workload is not None:
        setting, description = _preset_setting(preset, with_generator=False)
    else:
        setting, description = _preset_setting(preset, with_generator=True)
    if kv_capacity == "deployment":
        kv_capacity = Deployment(model, gpu, tensor_parallel).kv_capacity_tokens
    elif isinstance(kv_capacity, str):
        raise ValueError(f"kv_capacity must be a number of tokens or 'deployment', got {kv_capacity!r}")
    limits = {"kv_capacity": kv_capacity, "token_budget": token_budget, "max_batch_size": max_batch_size,
              "block_size": block_size}
    engine = replace(setting.engine, **{name: value for name, value in limits.items() if value is not None})
    if cost_model is None:
        deployment_changed = (model, gpu, tensor_parallel) != (DEFAULT_MODEL, DEFAULT_GPU, DEFAULT_TENSOR_PARALLEL)
        cost_model = "roofline" if deployment_changed else setting.cost_model
    resolved_cost = resolve_cost_model(cost_model, model, gpu, tensor_parallel)
    if workload is None:
        source = setting.generator
    else:
        source = workload
        description = (f"fixed workload {workload.name!r} ({len(workload)} requests)" if isinstance(workload, Workload)
                       else f"workload generator {workload!r}")
    return EnvConfig(workload=source, workload_source=description, engine=engine, cost_model=resolved_cost,
                     model=model, gpu=gpu, tensor_parallel=tensor_parallel,
                     window=PRESET_WINDOWS[preset] if window is None else window, preset=preset, **options)


def _preset_setting(preset: str, with_generator: bool) -> tuple[ProblemSetting, str]:
    """The preset's setting and a description of its workload (the trace is only loaded when needed)."""
    if preset == "tiny":
        return tiny_setting(), "tiny_setting(): 4-12 offline requests, prompts 2-16, outputs 1-8"
    generator, description = conv_workload_generator() if with_generator else (None, "")
    return ProblemSetting("infermax-v0", generator, INFERMAX_ENGINE, LinearCostModel()), description
