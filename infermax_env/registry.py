"""A name -> spec registry, shared by the GPU and model registries."""

from __future__ import annotations

from typing import Generic, TypeVar

Spec = TypeVar("Spec")


class Registry(Generic[Spec]):
    """Specs of one ``kind`` (e.g. "GPU") keyed by their ``name`` attribute."""

    def __init__(self, kind: str, spec_type: type):
        self.kind = kind
        self.spec_type = spec_type
        self._specs: dict[str, Spec] = {}

    def register(self, spec: Spec, *, overwrite: bool = False) -> Spec:
        name = spec.name  # type: ignore[attr-defined]
        if name in self._specs and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._specs[name] = spec
        return spec

    def get(self, name: str | Spec) -> Spec:
        if isinstance(name, self.spec_type):
            return name
        try:
            return self._specs[name]  # type: ignore[index]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._specs)
