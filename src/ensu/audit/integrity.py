"""The integrity stop (R-TR-2): the alarm that stops serving, its resumption, and the
monitor that raises it.

A breach found by :func:`ensu.audit.verify.verify` (here, by the monitor re-checking the
log in slices) opens an alarm row in the journal store; while it is open no data is
served (503 930002), in this process and every other one on the same store. Only an
operator's ``ensu journal resume``, after a clean verification, closes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from ensu.audit import retention, store
from ensu.audit.models import JournalAlarm
from ensu.audit.note import NoteError, NoteVerifier
from ensu.audit.store import JournalStore
from ensu.audit.verify import (
    Problem,
    Scanner,
    VerifyResult,
    compare_kept,
    purge_cutoffs,
    scan,
    verify,
)
from ensu.background import StopSignal

logger = logging.getLogger("ensu.audit")


async def open_alarm(connection: AsyncConnection) -> str | None:
    """The problem of the oldest alarm not cleared yet, if any."""
    query = (
        select(JournalAlarm.problem)
        .where(JournalAlarm.cleared_at.is_(None))
        .order_by(JournalAlarm.id)
        .limit(1)
    )
    return await connection.scalar(query)


async def raise_alarm(journal: JournalStore, problem: str, now: dt.datetime) -> None:
    """Open an alarm (unless one is open): every process stops at its next cycle."""
    async with journal.write() as connection:
        if await open_alarm(connection) is None:
            await connection.execute(insert(JournalAlarm).values(raised_at=now, problem=problem))


class ResumeRefused(RuntimeError):
    """The journal does not verify: the stop stays."""


async def resume(
    journal: JournalStore,
    verifier: NoteVerifier,
    *,
    operator: str,
    reason: str,
    now: dt.datetime,
    kept: str | None = None,
    exchange_days: int = retention.DEFAULT_EXCHANGE_DAYS,
) -> tuple[VerifyResult, int]:
    """Verify the whole journal (against ``kept`` too, see :func:`verify`), then clear
    the open alarms; how many were cleared."""
    result = await verify(journal, verifier, kept=kept, exchange_days=exchange_days)
    if result.problem is not None:
        raise ResumeRefused(str(result.problem))
    async with journal.write() as connection:
        cleared = await connection.execute(
            update(JournalAlarm)
            .where(JournalAlarm.cleared_at.is_(None))
            .values(cleared_at=now, cleared_by=operator[:128], clear_reason=reason)
        )
    return result, int(cleared.rowcount)


# -- the monitor -------------------------------------------------------------------------


#: Leaves per read in the serving process: a few milliseconds of hashing between awaits.
MONITOR_CHUNK = 256


class IntegrityMonitor:
    """Verifies the journal at start and periodically; sets :attr:`stopped` on a breach."""

    def __init__(
        self,
        journal: JournalStore,
        verifier: NoteVerifier,
        *,
        interval: float = 10.0,
        scrub_leaves: int = 20_000,
        on_breach: Callable[[Problem], Awaitable[None]] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        kept: Callable[[], str | None] | None = None,
        exchange_days: int = retention.DEFAULT_EXCHANGE_DAYS,
    ) -> None:
        """``kept``: reads the checkpoint kept outside the database (its signed note, None
        if there is none), compared at start and whenever the stop is lifted."""
        self.store = journal
        self.verifier = verifier
        self.kept = kept
        self.exchange_days = exchange_days
        self.interval = interval
        self.scrub_leaves = scrub_leaves
        self.on_breach = on_breach
        self.clock = clock
        self.stopped = False
        self.problem: str | None = None
        self.cycles = 0
        self._tail: Scanner | None = None
        self._scrub = Scanner(verifier)
        self._alarm_stored = False
        self._task: asyncio.Task[None] | None = None
        self._stop_signal = StopSignal()

    async def start(self) -> None:
        """Check once now (the app does not serve before), then every ``interval``."""
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="journal-monitor")

    async def close(self) -> None:
        self._stop_signal.stop()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while not await self._stop_signal.sleep(self.interval):
            await self.check()

    async def check(self) -> None:
        """One cycle: the open alarm, else the latest checkpoint, new leaves, a scrub."""
        self.cycles += 1
        try:
            async with self.store.read() as connection:
                alarm = await open_alarm(connection)
                if alarm is not None:
                    self.stopped, self.problem, self._alarm_stored = True, alarm, True
                    return
                if self.stopped and not self._alarm_stored:
                    problem: Problem | None = Problem("unrecorded", self.problem or "?")
                elif self.stopped:  # an operator resumed: start again from a clean state
                    logger.warning("journal integrity stop lifted by an operator")
                    self.stopped, self.problem = False, None
                    self._tail, self._scrub = None, Scanner(self.verifier)
                    problem = await self._cycle(connection)
                else:
                    problem = await self._cycle(connection)
        except (SQLAlchemyError, OSError) as exc:
            # An unavailable store is the writer's business (503 930002), not a breach.
            logger.warning("journal integrity check could not run: %r", exc)
            return
        except Exception as exc:  # data the verifier cannot even read is a breach (R-TR-2)
            problem = Problem("unreadable", f"the log could not be verified: {exc!r}")
        if problem is not None:
            await self._breach(problem)

    async def _cycle(self, connection: AsyncConnection) -> Problem | None:
        if self._tail is None:
            problem = await self._baseline(connection)
            if problem is not None:
                return problem
        tail = self._tail
        assert tail is not None
        size = await store.size(connection)
        if size < tail.position:
            return Problem("truncated", f"the journal had {tail.position} leaves, now {size}", size)
        latest = await store.latest_checkpoint(connection)
        if tail.previous_size > (-1 if latest is None else latest.tree_size):
            return Problem("checkpoint_removed", f"checkpoint {tail.previous_size} disappeared")
        tail.cutoffs = self._scrub.cutoffs = purge_cutoffs(
            self.verifier, latest, self.exchange_days
        )
        problem = await scan(connection, tail, MONITOR_CHUNK, None, size)
        return problem or await self._scrub_some(connection)

    async def _baseline(self, connection: AsyncConnection) -> Problem | None:
        """Trust nothing but the signature: the latest checkpoint against the tiles, and
        the log against the checkpoint kept outside the database."""
        kept = None if self.kept is None else await asyncio.to_thread(self.kept)
        if kept is not None:
            problem = await compare_kept(connection, self.verifier, kept)
            if problem is not None:
                return problem
        latest = await store.latest_checkpoint(connection)
        if latest is None:
            self._tail = Scanner(self.verifier)
            return None
        try:
            opened = self.verifier.open(latest.note)
            compact = await store.TileReader(connection).compact_range(latest.tree_size)
        except (NoteError, store.StoreError) as exc:
            return Problem("checkpoint_latest", f"checkpoint {latest.tree_size}: {exc}")
        if compact.root() != opened.root or latest.root_hash != opened.root:
            return Problem(
                "checkpoint_root_mismatch",
                f"the stored tree no longer matches the latest checkpoint {latest.tree_size}",
            )
        self._tail = Scanner.resume(self.verifier, latest, compact)
        return None

    async def _scrub_some(self, connection: AsyncConnection) -> Problem | None:
        budget = self.scrub_leaves
        while budget > 0:
            problem, read = await self._scrub.advance(connection, min(budget, MONITOR_CHUNK))
            if problem is not None:
                return problem
            if read == 0:
                problem = await self._scrub.finish(connection)
                self._scrub = Scanner(self.verifier)
                return problem
            budget -= read
        return None

    async def _breach(self, problem: Problem) -> None:
        first = not self.stopped
        if first:
            self.stopped, self.problem = True, str(problem)
            logger.critical(
                "journal integrity breach, operations stopped (R-TR-2): %s; "
                "see `ensu journal verify` and the procedure in ensu.audit.verify",
                problem,
            )
        try:
            await raise_alarm(self.store, self.problem or str(problem), self.clock())
            self._alarm_stored = True
        except Exception as exc:  # the stop holds in memory; the next cycle stores it
            logger.error("could not store the journal alarm: %r", exc)
        if first and self.on_breach is not None:
            await self.on_breach(problem)
