"""Quota counters in their own SQLite file, ``var/quota.db`` (R-Q-1, embedded default).

One statement per hit, in autocommit mode so that it is its own transaction::

    INSERT INTO quota_counters (key, minute, count) VALUES (?, ?, 1)
    ON CONFLICT (key, minute) DO UPDATE SET count = quota_counters.count + 1
    RETURNING count

SQLite lets one writer at a time into a database file, across processes, and the
statement reads the count inside its write transaction: the n-th hit of a window gets
``n``, whichever worker process makes it. Exact on one host (a SQLite file is not shared
across hosts: scale out with PostgreSQL or Redis).

Why a file of its own: the hits would otherwise queue behind the main database's writers
(imports, the journal's group commits) and the reverse. Why ``synchronous=NORMAL``: in
WAL mode a commit then costs no fsync (the WAL is synced at checkpoints), as fast as
``OFF`` for this load, while a power cut can lose only the last commits, never corrupt the
file; losing a few counts of the current minute is acceptable, a corrupt file is not.
The file holds nothing else and may be deleted while stopped; the table is created on
first use (not an Alembic migration: it is not the main database).

Two connections, one per thread: a hit first tries the statement **in the
event loop's thread** with no busy wait at all — tens of microseconds, and no hop to a
thread that would wait for the GIL while the loop is busy. Only when another process
holds the write lock (``SQLITE_BUSY``) does the hit go to the counter's own thread, whose
connection waits for the lock (``busy_timeout``) without blocking the event loop; a hit
that the check gave up on (timeout) finishes there without a second connection racing it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ensu import files
from ensu.gateway.quota.counter import (
    CounterStoreError,
    PurgeSchedule,
    QuotaDecision,
    decide,
    window_of,
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS quota_counters ("
    " key TEXT NOT NULL, minute INTEGER NOT NULL, count INTEGER NOT NULL,"
    " PRIMARY KEY (key, minute)) WITHOUT ROWID"
)
HIT = (
    "INSERT INTO quota_counters (key, minute, count) VALUES (?, ?, 1)"
    " ON CONFLICT (key, minute) DO UPDATE SET count = quota_counters.count + 1"
    " RETURNING count"
)
PURGE = "DELETE FROM quota_counters WHERE minute < ?"
PEEK = "SELECT count FROM quota_counters WHERE key = ? AND minute = ?"


class SQLiteCounter:
    """A :class:`~ensu.gateway.quota.QuotaCounter` on one SQLite file and one connection,
    opened on the first hit (see the module docstring)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 1000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ensu-quota")
        # Touched only in that thread:
        self._connection: sqlite3.Connection | None = None
        self._purges = PurgeSchedule()
        # Touched only in the event loop's thread (never waits for a lock):
        self._inline: sqlite3.Connection | None = None
        self._purge_asked: int | None = None

    def _open(self, busy_timeout_ms: int | None = None) -> sqlite3.Connection:
        files.private_file(self.path)  # 0600 whatever the umask, and so its -wal and -shm
        # Autocommit: each statement is its own transaction, committed when it completes.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        timeout = self.busy_timeout_ms if busy_timeout_ms is None else busy_timeout_ms
        try:
            # The busy timeout first: the other statements may wait for another process.
            connection.execute(f"PRAGMA busy_timeout={int(timeout)}")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _hit(self, key: str, window: int) -> int:
        if self._connection is None:
            self._connection = self._open()
        # fetchall: the statement runs to its end, which commits and frees the write lock.
        ((count,),) = self._connection.execute(HIT, (key, window)).fetchall()
        keep_from = self._purges.due(window)
        if keep_from is not None:
            self._connection.execute(PURGE, (keep_from,))
        return int(count)

    def _hit_inline(self, key: str, window: int) -> int | None:
        """The hit in the loop's thread, or None when the file is locked right now."""
        try:
            if self._inline is None:
                self._inline = self._open(busy_timeout_ms=0)
            ((count,),) = self._inline.execute(HIT, (key, window)).fetchall()
        except sqlite3.OperationalError as exc:
            # Primary codes: SQLITE_BUSY_RECOVERY, _SNAPSHOT ... are "busy" too.
            if (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None  # another process writes: wait for it in the counter's thread
            raise
        return int(count)

    def try_hit(self, *, key: str, limit: int, now: float) -> QuotaDecision | None:
        window = window_of(now)
        if window != self._purge_asked:
            return None  # a new window: the purge runs off the loop, in hit()
        try:
            count = self._hit_inline(key, window)
        except (sqlite3.Error, OSError) as exc:
            raise CounterStoreError(f"quota store {self.path}: {exc}") from exc
        return None if count is None else decide(count=count, limit=limit, now=now)

    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        window = window_of(now)
        try:
            count = self._hit_inline(key, window)
            loop = asyncio.get_running_loop()
            if count is None:
                count = await loop.run_in_executor(self._thread, self._hit, key, window)
            elif window != self._purge_asked:  # once a window: the purge runs off the loop
                self._purge_asked = window
                await loop.run_in_executor(self._thread, self._purge, window)
        except (sqlite3.Error, OSError) as exc:
            raise CounterStoreError(f"quota store {self.path}: {exc}") from exc
        return decide(count=count, limit=limit, now=now)

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        """A read in the loop's thread: in WAL mode a reader never waits for a writer."""
        try:
            if self._inline is None:
                self._inline = self._open(busy_timeout_ms=0)
            found = self._inline.execute(PEEK, (key, window_of(now))).fetchall()
        except (sqlite3.Error, OSError) as exc:
            raise CounterStoreError(f"quota store {self.path}: {exc}") from exc
        return decide(count=int(found[0][0]) if found else 0, limit=limit, now=now)

    def _purge(self, window: int) -> None:
        if self._connection is None:
            self._connection = self._open()
        keep_from = self._purges.due(window)
        if keep_from is not None:
            self._connection.execute(PURGE, (keep_from,))

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _close_inline(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    async def aclose(self) -> None:
        self._close_inline()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)
