"""A bounded-staleness cache for the hot path (the téléservices of a certificate).

Entries are served for at most ``ttl`` seconds after they were loaded, so that a
suspension or revocation made by another process is enforced within that time; a change
made in this process clears the cache at once (:meth:`RefreshingCache.clear`).

Two rules keep the expiry from stalling the service (each expiry under load
sent every concurrent call of that certificate to the database at once, a 30-50 ms
stall every second, the p99 of the bench):

- **one load per key at a time**: callers that find no fresh entry share the load in
  flight instead of each starting one;
- **refresh ahead**: once an entry is ``refresh_after`` seconds old, the next caller
  starts a background reload and is served the entry, which stays within ``ttl``; only
  an entry older than ``ttl`` (a reload that failed or is slow) makes callers wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

logger = logging.getLogger("ensu.gateway")


class RefreshingCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        *,
        ttl: float,
        refresh_after: float | None = None,
        maxsize: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.load, self.ttl, self.maxsize, self.clock = load, ttl, maxsize, clock
        self.refresh_after = ttl / 2 if refresh_after is None else refresh_after
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._generation = 0  # bumped by clear(): a load begun before it is not stored

    async def get(self, key: K) -> V:
        """The value of ``key``, loaded at most ``ttl`` seconds ago."""
        entry = self._entries.get(key)
        if entry is not None:
            age = self.clock() - entry[0]
            if age < self.ttl:
                if age >= self.refresh_after and key not in self._loading:
                    self._start(key).add_done_callback(_log_failure)
                return entry[1]
        task = self._loading.get(key) or self._start(key)
        return await asyncio.shield(task)

    def _start(self, key: K) -> asyncio.Task[V]:
        task = asyncio.create_task(self._load(key, self._generation))
        self._loading[key] = task
        return task

    async def _load(self, key: K, generation: int) -> V:
        started = self.clock()
        try:
            value = await self.load(key)
        finally:
            if self._loading.get(key) is asyncio.current_task():
                del self._loading[key]
        if generation == self._generation:
            if len(self._entries) >= self.maxsize:
                self._entries.clear()  # bounded memory; a refill costs one query per key
            self._entries[key] = (started, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
        self._generation += 1


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # The entry stays served until its ttl; then callers wait for a load that may
        # fail again, and get its error (503 930004).
        logger.warning("background reload failed: %r", task.exception())
