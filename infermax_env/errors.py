"""Exceptions raised by infermax_env. All subclass ValueError so callers can catch bad input uniformly."""


class InferMaxError(ValueError):
    """Base class for every error infermax_env raises on bad input."""


class DeploymentError(InferMaxError):
    """The model does not fit on the GPUs, or a deployment parameter is invalid."""


class WorkloadError(InferMaxError):
    """A malformed trace or workload (missing column, bad length, unsorted arrivals, ...)."""


class InfeasibleDecisionError(InferMaxError):
    """A scheduling decision violates a simulator constraint (budget, memory, batch size, semantics)."""
