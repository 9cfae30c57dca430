"""A tiny time-bounded cache for the hot path (consumer views, revocation answers).

Entries live at most ``ttl`` seconds, so that a suspension or revocation made by another
process is enforced within that time; a mutation made in this process clears the cache
at once (:meth:`TTLCache.clear`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self, *, ttl: float, maxsize: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.maxsize, self.clock = ttl, maxsize, clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self.maxsize:
            self._entries.clear()  # bounded memory; a refill costs one query per key
        self._entries[key] = (self.clock() + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()
