"""Baseline schedulers: heuristics real serving systems and the INFERMAX / SageSched papers use, and (in
:mod:`baselines.optimal`) the CP-SAT optimum. Each runs directly on :class:`infermax_env.Simulator` via
``sim.run(make_scheduler(name))``; the heuristics are configurations of one batch builder
(:mod:`baselines.builder`)."""

from infermax_env.schedulers import register_scheduler

from .builder import BatchBuilderScheduler, OracleRequiredError
from .infermax import InferMaxScheduler
from .mlfq import MLFQScheduler
from .orca import OrcaScheduler, StaticBatchScheduler
from .predictor import OutputDistribution, OutputLengthPredictor
from .random_policy import RandomScheduler
from .rank import SortArrivalScheduler, SortOutputScheduler, SortPromptScheduler, SRPTScheduler
from .sagesched import PredictedSJFScheduler, SageSchedScheduler
from .sarathi import SarathiScheduler
from .tuned import TunedScheduler
from .variants import ReservationExceededError, capped_no_eviction, chunked_preset, oracle_no_eviction
from .vllm import VLLMScheduler

VLLMNoEvictionScheduler = oracle_no_eviction(VLLMScheduler)
SarathiNoEvictionScheduler = oracle_no_eviction(SarathiScheduler)
InferMaxNoEvictionScheduler = oracle_no_eviction(InferMaxScheduler)
SortArrivalNoEvictionScheduler = oracle_no_eviction(SortArrivalScheduler)
SortPromptNoEvictionScheduler = oracle_no_eviction(SortPromptScheduler)
SortOutputNoEvictionScheduler = oracle_no_eviction(SortOutputScheduler)
SRPTNoEvictionScheduler = oracle_no_eviction(SRPTScheduler)
VLLMCapScheduler = capped_no_eviction(VLLMScheduler)
SarathiCapScheduler = capped_no_eviction(SarathiScheduler)
Sarathi512Scheduler = chunked_preset(SarathiScheduler, 512, "sarathi_512")

SCHEDULERS: dict[str, type] = {
    "vllm": VLLMScheduler,
    "vllm_noe": VLLMNoEvictionScheduler,
    "vllm_cap": VLLMCapScheduler,
    "sarathi": SarathiScheduler,
    "sarathi_noe": SarathiNoEvictionScheduler,
    "sarathi_cap": SarathiCapScheduler,
    "sarathi_512": Sarathi512Scheduler,
    "orca": OrcaScheduler,
    "static": StaticBatchScheduler,
    "sort_arrival": SortArrivalScheduler,
    "sort_arrival_noe": SortArrivalNoEvictionScheduler,
    "sort_prompt": SortPromptScheduler,
    "sort_prompt_noe": SortPromptNoEvictionScheduler,
    "sort_output": SortOutputScheduler,
    "sort_output_noe": SortOutputNoEvictionScheduler,
    "srpt": SRPTScheduler,
    "srpt_noe": SRPTNoEvictionScheduler,
    "infermax": InferMaxScheduler,
    "infermax_noe": InferMaxNoEvictionScheduler,
    "sagesched": SageSchedScheduler,
    "sjf_predicted": PredictedSJFScheduler,
    "tuned": TunedScheduler,
    "mlfq": MLFQScheduler,
    "random": RandomScheduler,
}


for _name, _factory in SCHEDULERS.items():  # the env resolves reference="vllm" here (it does not import baselines)
    register_scheduler(_name, _factory)


def make_scheduler(name: str, **kwargs):
    """Instantiate a registered scheduler by name (keyword arguments go to its constructor)."""
    try:
        cls = SCHEDULERS[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(sorted(SCHEDULERS))}") from None
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ValueError(f"scheduler {name!r} does not accept {sorted(kwargs)}: {error}") from None


__all__ = [
    "SCHEDULERS", "BatchBuilderScheduler", "InferMaxNoEvictionScheduler", "InferMaxScheduler", "MLFQScheduler",
    "OracleRequiredError", "OrcaScheduler", "OutputDistribution", "OutputLengthPredictor", "PredictedSJFScheduler",
    "RandomScheduler", "ReservationExceededError", "SRPTNoEvictionScheduler", "SRPTScheduler", "SageSchedScheduler",
    "Sarathi512Scheduler", "SarathiCapScheduler",
    "SarathiNoEvictionScheduler", "SarathiScheduler", "SortArrivalNoEvictionScheduler", "SortArrivalScheduler",
    "SortOutputNoEvictionScheduler", "SortOutputScheduler", "SortPromptNoEvictionScheduler", "SortPromptScheduler",
    "StaticBatchScheduler", "TunedScheduler", "VLLMCapScheduler", "VLLMNoEvictionScheduler", "VLLMScheduler",
    "capped_no_eviction", "make_scheduler", "oracle_no_eviction",
]
