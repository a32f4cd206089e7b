"""infermax-env: an iteration-level LLM inference scheduling simulator, cost models and Gymnasium envs.

The simulator core (this package minus :mod:`infermax_env.envs` and the library adapters :mod:`.wrappers`,
:mod:`.vector`, :mod:`.rllib`, :mod:`.torchrl_support` and :mod:`.tianshou_support`) does not import Gymnasium;
importing the package registers the envs
``InferMax-v0`` and ``InferMax-Tiny-v0``.
"""

from .batch import Batch
from .cost import CostModel, LinearCoefficients, LinearCostModel, RooflineCostModel, RooflineParams
from .deployment import Deployment, EngineConfig
from .errors import DeploymentError, InferMaxError, InfeasibleDecisionError, WorkloadError
from .hardware import GPUSpec, get_gpu, list_gpus, register_gpu
from .metrics import OBJECTIVES, Objective, RunMetrics, compute_metrics, objective_value
from .models import ModelSpec, get_model, list_models, register_model
from .simulator import Decision, RunLog, Scheduler, Simulator, StepResult
from .workload import (Empirical, Fixed, LengthDistribution, LogNormal, SyntheticGenerator, TraceWindowGenerator,
                       Uniform, Workload, load_azure_trace)

__version__ = "0.1.0"

__all__ = [
    "Batch", "CostModel", "Decision", "Deployment", "DeploymentError", "Empirical", "EngineConfig", "Fixed",
    "GPUSpec", "InfeasibleDecisionError", "InferMaxError", "LengthDistribution", "LinearCoefficients",
    "LinearCostModel", "LogNormal", "ModelSpec", "OBJECTIVES", "Objective", "RooflineCostModel", "RooflineParams",
    "RunLog", "RunMetrics", "Scheduler", "Simulator", "StepResult", "SyntheticGenerator", "TraceWindowGenerator",
    "Uniform", "Workload", "WorkloadError", "compute_metrics", "get_gpu", "get_model", "list_gpus", "list_models",
    "load_azure_trace", "objective_value", "register_gpu", "register_model",
]
from . import envs  # noqa: E402,F401  (registers the envs; the simulator core imports no gymnasium)
