"""Name -> constructor maps. Architectures, objectives, augmentations, IRI
losses, seed types and observer metrics are each a Registry: adding one is one
``@REGISTRY.register("name")`` plus its entry in the config schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=Callable)


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = obj
            return obj

        return deco

    def __missing__(self, name: str):
        raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self)}")
