"""Stopping background loops between iterations, never in the middle of their I/O.

Cancelling a task while it waits on the database leaves the driver's worker (aiosqlite's
thread) finishing an operation for a future nobody awaits, sometimes after the event loop
is gone. The journal's loops sleep on a :class:`StopSignal` instead, and closing them means:
stop, then wait for the current iteration to end.
"""

from __future__ import annotations

import asyncio


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
