"""Scheduler names the env understands (``reference="vllm"``): a registry that scheduler packages fill.

The simulator core and its env do not import any scheduler package. A package that defines schedulers
(:mod:`baselines` does, for all of its heuristics) registers a factory per name when it is imported; the env
then resolves a name through this registry.
"""

from __future__ import annotations

from typing import Any, Callable

from .simulator import Scheduler

_FACTORIES: dict[str, Callable[[], Scheduler]] = {}


def register_scheduler(name: str, factory: Callable[[], Scheduler], *, overwrite: bool = False) -> None:
    """Make ``name`` resolve to ``factory()`` (e.g. a scheduler class)."""
    if name in _FACTORIES and _FACTORIES[name] is not factory and not overwrite:
        raise ValueError(f"scheduler {name!r} is already registered; pass overwrite=True to replace it")
    _FACTORIES[name] = factory


def scheduler_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_FACTORIES)


def resolve_scheduler(reference: Any) -> Scheduler:
    """The scheduler ``reference`` stands for: a registered name, a scheduler (an object with ``decide``), or a
    factory of one such as a scheduler class (called once per use, so each use starts fresh)."""
    if isinstance(reference, str):
        if reference not in _FACTORIES:
            raise ValueError(f"unknown scheduler {reference!r}; registered: {scheduler_names() or 'none'} "
                             f"(`import baselines` registers its heuristics; in a worker process that does not "
                             f"import it, pass the scheduler class, e.g. baselines.VLLMScheduler, instead of a name)")
        return _FACTORIES[reference]()
    if isinstance(reference, type) or not callable(getattr(reference, "decide", None)):
        if not callable(reference):
            raise ValueError(f"a scheduler must be a registered name, an object with decide(sim) or a factory of "
                             f"one, got {reference!r}")
        reference = reference()
    return reference
