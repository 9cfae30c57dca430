"""Quota counters in the main PostgreSQL database, exact across hosts (R-Q-1).

The same single statement as on SQLite, in autocommit (one round trip)::

    INSERT INTO quota_counters (key, minute, count) VALUES (%s, %s, 1)
    ON CONFLICT (key, minute) DO UPDATE SET count = quota_counters.count + 1
    RETURNING count

``ON CONFLICT DO UPDATE`` locks the window's row and updates its latest committed
version, so concurrent hits queue on that row and each gets its own rank. The table comes
from the migrations (:mod:`ensu.gateway.quota.models`).

It is the hot path, so psycopg is used directly, over a few connections of the counter's
own: measured here, a hit costs about 0.13 ms of CPU this way against 0.5 ms through
SQLAlchemy's engine. The connections run with ``synchronous_commit=off``: a hit's commit
does not wait for the WAL flush; a crash of the PostgreSQL server can lose the last
fraction of a second of counts, never corrupt anything (unlike ``fsync=off``), which is
acceptable for counters of one-minute windows (as ``synchronous=NORMAL`` for SQLite).

With a ``timeout`` (the app passes ``ENSU_STORE_TIMEOUT_SECONDS``) the connections are
bounded (:class:`~ensu.postgres.BoundedConnection`): connecting and each hit give up after
it, and a hit abandoned by the quota check's own, shorter bound closes its connection at
once instead of waiting for a cancel request to cross the failing link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import psycopg

from ensu.gateway.quota.counter import (
    CounterStoreError,
    PurgeSchedule,
    QuotaDecision,
    decide,
    window_of,
)
from ensu.postgres import BoundedConnection, postgres_conninfo

HIT = (
    "INSERT INTO quota_counters (key, minute, count) VALUES (%s, %s, 1)"
    " ON CONFLICT (key, minute) DO UPDATE SET count = quota_counters.count + 1"
    " RETURNING count"
)
PURGE = "DELETE FROM quota_counters WHERE minute < %s"
PEEK = "SELECT count FROM quota_counters WHERE key = %s AND minute = %s"
#: How the counters' connections show in ``pg_stat_activity``.
APPLICATION_NAME = "ensu-quota"


class PostgresCounter:
    """A :class:`~ensu.gateway.quota.QuotaCounter` over at most ``pool_size`` connections.

    Connections open on demand and are reused; under a burst, hits wait for one (a hit
    holds it for one round trip) rather than open more. A connection that failed, or
    whose hit was abandoned (the check's timeout), is closed, never reused.
    """

    def __init__(self, conninfo: str, *, pool_size: int = 8, timeout: float | None = None) -> None:
        self.conninfo = conninfo
        self.timeout = timeout
        self._slots = anyio.Semaphore(pool_size)
        self._idle: list[psycopg.AsyncConnection[tuple[int]]] = []
        self._purges = PurgeSchedule()

    @classmethod
    def from_url(
        cls, url: str, *, pool_size: int = 8, timeout: float | None = None
    ) -> PostgresCounter:
        """From the SQLAlchemy URL of the database (``postgresql+psycopg://…``)."""
        return cls(postgres_conninfo(url), pool_size=pool_size, timeout=timeout)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[int]]:
        if self.timeout is not None:
            connection: psycopg.AsyncConnection[
                tuple[int]
            ] = await BoundedConnection.connect_bounded(
                self.conninfo,
                bound=self.timeout,
                autocommit=True,
                options="-c synchronous_commit=off",
                application_name=APPLICATION_NAME,
            )
            return connection
        return await psycopg.AsyncConnection.connect(
            self.conninfo,
            autocommit=True,
            options="-c synchronous_commit=off",
            application_name=APPLICATION_NAME,
        )

    async def _count(
        self, connection: psycopg.AsyncConnection[tuple[int]], key: str, window: int
    ) -> int:
        cursor = await connection.execute(HIT, (key, window))
        row = await cursor.fetchone()
        assert row is not None  # RETURNING gives one row
        keep_from = self._purges.due(window)
        if keep_from is not None:
            await connection.execute(PURGE, (keep_from,))
        return row[0]

    async def _peek(
        self, connection: psycopg.AsyncConnection[tuple[int]], key: str, window: int
    ) -> int:
        cursor = await connection.execute(PEEK, (key, window))
        row = await cursor.fetchone()
        return 0 if row is None else row[0]

    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        return decide(count=await self._run(self._count, key, now), limit=limit, now=now)

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        return decide(count=await self._run(self._peek, key, now), limit=limit, now=now)

    async def _run(
        self,
        statement: Callable[[psycopg.AsyncConnection[tuple[int]], str, int], Awaitable[int]],
        key: str,
        now: float,
    ) -> int:
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            try:
                connection = connection or await self._connect()
                count = await statement(connection, key, window_of(now))
            except BaseException as exc:
                if connection is not None:
                    with anyio.CancelScope(shield=True):
                        await connection.close()
                if isinstance(exc, psycopg.Error | OSError):
                    raise CounterStoreError(f"quota store postgresql: {exc}") from exc
                raise
            self._idle.append(connection)
        return count

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
