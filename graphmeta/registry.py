"""The one registry pattern: named entries of one kind, each registered once by its own module.

Learner types (:data:`graphmeta.learners.registry.LEARNERS`), adaptation algorithms
(:data:`graphmeta.adapt.algorithms.ALGORITHMS`) and the task families that dataset cards name
(:data:`graphmeta.families.cards.FAMILIES`) are each a :class:`Registry`. An entry carries its
own ``name`` (a class attribute, or a field) and its module registers it where it is defined::

    @ALGORITHMS.register
    class MAML(Algorithm):
        name = "maml"

A registry is a read-only mapping ``{name: entry}`` in registration order, so configs list and
check names against it (``OneOf(tuple(ALGORITHMS))``); :meth:`Registry.lookup` turns an unknown
name into the package's one-line error with the closest registered name.

This module imports nothing from graphmeta but :mod:`graphmeta.errors`, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from .errors import ConfigError, GraphMetaError, closest

Entry = TypeVar("Entry")


class Registry(Mapping[str, Entry], Generic[Entry]):
    """Entries of one ``kind`` (``"algorithm"``, ``"learner type"``, ...) by their ``name``."""

    def __init__(self, kind: str, error: type[GraphMetaError] = ConfigError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> Entry:
        """Add ``entry`` under ``entry.name`` and return it (so it works as a class decorator); a
        name, or an entry, registered twice is an error."""
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise self.error(f"a {self.kind} needs a non-empty string `name` to be registered, got {name!r}")
        if name in self._entries or any(existing is entry for existing in self._entries.values()):
            raise self.error(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def lookup(self, name: object, where: str = "") -> Entry:
        """The entry named ``name``; an unknown name is the registry's error naming the closest one."""
        if not isinstance(name, str) or name not in self._entries:
            place = f" in {where}" if where else ""
            raise self.error(f"unknown {self.kind} {name!r}{place}{closest(str(name), self._entries)}; "
                             f"choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
