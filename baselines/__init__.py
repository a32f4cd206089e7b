"""Baseline schedulers: heuristics real serving systems use, and (in :mod:`baselines.optimal`) the CP-SAT
optimum. Each runs directly on :class:`infermax_env.Simulator` via ``sim.run(scheduler)``."""

from .vllm import VLLMScheduler

SCHEDULERS = {"vllm": VLLMScheduler}


def make_scheduler(name: str, **kwargs):
    """Instantiate a registered scheduler by name."""
    try:
        cls = SCHEDULERS[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(sorted(SCHEDULERS))}") from None
    return cls(**kwargs)


__all__ = ["SCHEDULERS", "VLLMScheduler", "make_scheduler"]
