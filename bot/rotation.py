"""A round-robin over a changing set of keys, a bounded number of them per round.

Periodic checks (the pipelines polling fallback) use it so that one round costs the same with ten
projects or a thousand: each round takes the next ``batch`` keys after the last one it took, and
wraps around. Keys are compared, not indexed, so keys added or removed between rounds neither skip
nor repeat the others. It also remembers when each key was last looked at, so that a check can ask
"what is new since I last looked" however long a full turn takes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar


class _Ordered(Hashable, Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)


class Rotation(Generic[K]):
    """``take(keys)`` → the next ``batch`` of ``keys`` in order, continuing where the last round stopped."""

    def __init__(self, batch: int) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.batch = batch
        self._last: K | None = None
        self._looked_at: dict[K, float] = {}

    def take(self, keys: Iterable[K]) -> list[K]:
        ordered = sorted(set(keys))
        for gone in self._looked_at.keys() - set(ordered):
            del self._looked_at[gone]
        if len(ordered) <= self.batch:
            self._last = None
            return ordered
        start = bisect_right(ordered, self._last) if self._last is not None else 0
        chosen = (ordered[start:] + ordered[:start])[: self.batch]
        self._last = chosen[-1]
        return chosen

    def looked_at(self, key: K) -> float | None:
        """When ``key`` was last marked (a ``time.time()``), or None if never."""
        return self._looked_at.get(key)

    def mark(self, key: K, when: float) -> None:
        self._looked_at[key] = when
