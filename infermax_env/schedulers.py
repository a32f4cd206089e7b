"""Scheduler names the env understands (``reference="vllm"``): a registry that scheduler packages fill.

The simulator core and its env do not import any scheduler package. A package that defines schedulers
(:mod:`baselines` does, for all of its heuristics) registers a factory per name when it is imported; the env
then resolves a name through this registry. A name not yet registered loads the packages advertised under the
``infermax_env.schedulers`` entry-point group first, so names also resolve in worker processes (subprocess vector
envs, RLlib EnvRunners) that never imported those packages.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Callable

from .simulator import Scheduler

ENTRY_POINT_GROUP = "infermax_env.schedulers"

_FACTORIES: dict[str, Callable[[], Scheduler]] = {}


def register_scheduler(name: str, factory: Callable[[], Scheduler], *, overwrite: bool = False) -> None:
    """Make ``name`` resolve to ``factory()`` (e.g. a scheduler class)."""
    if name in _FACTORIES and _FACTORIES[name] is not factory and not overwrite:
        raise ValueError(f"scheduler {name!r} is already registered; pass overwrite=True to replace it")
    _FACTORIES[name] = factory


def scheduler_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_FACTORIES)


def _load_advertised_packages() -> None:
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def resolve_scheduler(reference: Any) -> Scheduler:
    """The scheduler ``reference`` stands for: a registered name, a scheduler (an object with ``decide``), or a
    factory of one such as a scheduler class (called once per use, so each use starts fresh)."""
    if isinstance(reference, str):
        if reference not in _FACTORIES:
            _load_advertised_packages()
        if reference not in _FACTORIES:
            raise ValueError(f"unknown scheduler {reference!r}; registered: {scheduler_names() or 'none'} "
                             f"(packages register names when imported or through the {ENTRY_POINT_GROUP!r} "
                             f"entry-point group; a scheduler class, e.g. baselines.VLLMScheduler, works anywhere)")
        return _FACTORIES[reference]()
    if isinstance(reference, type) or not callable(getattr(reference, "decide", None)):
        if not callable(reference):
            raise ValueError(f"a scheduler must be a registered name, an object with decide(sim) or a factory of "
                             f"one, got {reference!r}")
        reference = reference()
    return reference
