"""A small name registry (register / get / names) used for datasets, granularities, methods,
models, summarising functions and executors, so CLI choices and error messages come from one
place. An entry may take one parameter written `name:ARG` (`grid:8`, `topk:5`); `split` is the
one parser of that syntax."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from spurspec.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._params: dict[str, str] = {}  # name -> placeholder of its parameter ("K" for grid:K)

    def register(self, name: str, param: str | None = None) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` above a class or function."""

        def add(obj: T) -> T:
            self.add(name, obj, param)
            return obj

        return add

    def add(self, name: str, obj: T, param: str | None = None) -> None:
        """Register `obj`; with `param` the name is written `name:PARAM` and needs its argument."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        if param is not None:
            self._params[name] = param

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.choices())}"
            ) from None

    def split(self, text: str) -> tuple[str, str | None]:
        """'grid:8' -> ('grid', '8'); 'seg' -> ('seg', None). Refuses a missing argument, an
        argument to a name that takes none, and unknown names (listing the valid ones)."""
        base, sep, arg = str(text).partition(":")
        self.get(base)
        param = self._params.get(base)
        if param is not None and not (sep and arg):
            raise ConfigError(f"{self.kind} {text!r} needs a parameter: {base}:{param}")
        if param is None and sep:
            raise ConfigError(f"{self.kind} {text!r}: {base} takes no parameter")
        return base, (arg if param is not None else None)

    def names(self) -> list[str]:
        return sorted(self._items)

    def choices(self) -> list[str]:
        """The names as a user writes them: `grid:K` for an entry with a parameter."""
        return [f"{n}:{self._params[n]}" if n in self._params else n for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
