"""Stopping background loops between iterations, never in the middle of their I/O.

Cancelling a task while it waits on the database leaves the driver's worker (aiosqlite's
thread) finishing an operation for a future nobody awaits, sometimes after the event loop
is gone. The journal's loops sleep on a :class:`StopSignal` instead, and closing them means:
stop, then wait for the current iteration to end.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class StopSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    def stop(self) -> None:
        self._event.set()

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` as soon as a stop is asked (then the loop ends)."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        return True


class Periodic:
    """A background job: :meth:`tick` every ``interval`` seconds until :meth:`close`.

    A tick that fails is logged (an error at the first failure of a streak, a warning
    when ticks succeed again) and the next one tries again: the jobs keep their state
    in the database or in memory, never in the loop. ``close`` stops between ticks
    (see :class:`StopSignal`).
    """

    #: The task's name, and the job's name in the log.
    job = "job"
    #: Tick once in :meth:`start`, before the loop (a watch that must know at once).
    eager = False

    def __init__(self, *, interval: float, logger: logging.Logger) -> None:
        self.interval = interval
        self.logger = logger
        self._stopper = StopSignal()
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        if self.eager:
            try:
                await self.tick()
            except Exception as exc:  # the loop retries
                self.logger.error("%s: first tick failed: %r", self.job, exc)
        self._task = asyncio.create_task(self._loop(), name=self.job)

    async def close(self) -> None:
        self._stopper.stop()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        failing = False
        while not await self._stopper.sleep(self.interval):
            try:
                await self.tick()
            except Exception as exc:  # the state is kept elsewhere; the next tick retries
                if not failing:
                    self.logger.error("%s failed: %r", self.job, exc)
                failing = True
                continue
            if failing:
                self.logger.warning("%s works again", self.job)
            failing = False


class Watch(Periodic):
    """Rows the hot path asks about, kept in memory and reloaded every ``refresh``
    seconds (the maintenance windows, the service cut): :meth:`load` reads them in one
    session, :attr:`fresh_at` says when (Unix seconds, for the metrics' cache age). It
    loads once in :meth:`start`; a reload that fails keeps what was last read.
    """

    eager = True

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        refresh: float,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger,
    ) -> None:
        super().__init__(interval=refresh, logger=logger)
        self.sessionmaker = sessionmaker
        self.clock = clock
        #: When the rows were last read (Unix seconds); -inf before the first read.
        self.fresh_at = -math.inf

    async def load(self, session: AsyncSession, now: float) -> None:
        """Read the rows as of ``now`` (the clock when the reload began)."""
        raise NotImplementedError

    async def refresh(self) -> None:
        started = self.clock()
        async with self.sessionmaker() as session:
            await self.load(session, started)
        self.fresh_at = started

    async def tick(self) -> None:
        await self.refresh()
