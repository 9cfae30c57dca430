"""Verification of the journal, and the integrity stop (R-TR-2).

:func:`verify` reads the whole log in index order, in one snapshot, and checks:

1. indices are contiguous from 0 (a deleted, inserted or renumbered row shows as a gap);
2. each record hashes to its leaf hash (``SHA-256(0x00 || record)``), is a canonical
   record, and its indexed columns are copies of its fields; a purged leaf (record
   ``NULL``, ``purged_at`` set, R-TR-4) is taken at its stored leaf hash;
3. each stored tile equals the subtree recomputed from the leaves, and no tile is missing
   or extra;
4. each checkpoint's signature verifies (Ed25519, signed note), its columns match its
   note, its root equals the root recomputed from the leaves at its size, and an
   RFC 9162 §2.1.4 consistency proof from the previous checkpoint verifies;
5. no checkpoint covers more leaves than the log holds (a truncation).

Editing, deleting, reordering, inserting or truncating rows, and rebuilding the log after
a checkpoint (leaf hashes and tiles recomputed, but not the signature), all fail one of
these; the result names the first problem with its code and leaf index.

Leaves after the last checkpoint are only as good as the store until the next checkpoint
(at most ``checkpoint_interval`` seconds, see :mod:`ensu.audit.writer`); the monitor
covers them, and notices a log that shrinks.

The integrity stop
------------------
:class:`IntegrityMonitor` runs in the app: at start, and every ``interval`` seconds
(10 by default), it (a) checks the latest checkpoint — signature, and root recomputed
from the tiles; (b) verifies every leaf appended since, as above; (c) scrubs the next
``scrub_leaves`` leaves of the whole log from the start, so the full log is reverified
continuously. It reads :data:`MONITOR_CHUNK` leaves at a time and the event loop
serves calls between two chunks: verification is spread over the minute in small
slices, never a pause of seconds (issue 5: at 5,000 calls/s, a 60 s cycle re-hashed
300,000 leaves in one burst, in the serving process). On a problem it sets
:attr:`IntegrityMonitor.stopped`, logs it as critical, and records an open alarm in
``journal_alarms``; every process sees the alarm at its next cycle and stops too.
While stopped, the API answers 503 with code 930002
(:class:`~ensu.audit.errors.JournalIntegrityStop`); calls are still journaled.

Operator procedure (R-OPS-2):

1. ``ensu journal verify`` names the first problem (code, leaf index, checkpoint);
   ``ensu journal status`` shows the open alarm.
2. Investigate with the journal of the period (``ensu journal export``) and qualify the
   incident. Restore the journal store from its last good backup (a rebuilt or edited
   log cannot be repaired: its signed checkpoints are the reference), or find that the
   alarm was caused by something else (a wrong verifier key file, say).
3. ``ensu journal verify`` must now succeed.
4. ``ensu journal resume --reason "..."`` verifies the whole log again, refuses if it
   fails, then clears the alarm and records who resumed and why (an event in the
   journal). The monitors lift the stop at their next cycle (within ``interval``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from ensu.audit import merkle, store
from ensu.audit.models import JournalAlarm
from ensu.audit.note import NoteError, NoteVerifier
from ensu.audit.records import EventRecord, RecordError, decode
from ensu.audit.stopper import Stopper
from ensu.audit.store import JournalStore, StoredCheckpoint, utc

logger = logging.getLogger("ensu.audit")


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing found wrong: a stable ``code``, a sentence, the leaf if any."""

    code: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        where = "" if self.index is None else f" (leaf {self.index})"
        return f"{self.code}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    size: int
    checkpoints: int
    purged: int
    problem: Problem | None
    latest: StoredCheckpoint | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class Scanner:
    """Streams leaves in index order and checks them (the state of a verification)."""

    verifier: NoteVerifier
    position: int = 0
    compact: merkle.CompactRange = field(default_factory=merkle.CompactRange)
    #: The last verified checkpoint: its size, root and right edge; leaves since.
    previous_size: int = -1
    previous_root: bytes = merkle.EMPTY_ROOT
    previous_compact: merkle.CompactRange = field(default_factory=merkle.CompactRange)
    since: merkle.CompactRange = field(default_factory=merkle.CompactRange)
    checkpoints: int = 0
    purged: int = 0

    @classmethod
    def resume(
        cls, verifier: NoteVerifier, checkpoint: StoredCheckpoint, compact: merkle.CompactRange
    ) -> Scanner:
        """A scanner trusting ``checkpoint`` (verified) and the edge ``compact`` of it."""
        size = checkpoint.tree_size
        return cls(
            verifier=verifier,
            position=size,
            compact=compact.copy(),
            previous_size=size,
            previous_root=checkpoint.root_hash,
            previous_compact=compact.copy(),
            since=merkle.CompactRange(size, size),
        )

    async def advance(self, connection: AsyncConnection, limit: int) -> tuple[Problem | None, int]:
        """Check up to ``limit`` more leaves; the first problem, and how many were read."""
        rows = await store.leaves(connection, self.position, limit)
        end = self.position + len(rows)
        pending = await store.checkpoints(connection, self.previous_size + 1, end)
        expected = await self._stored_tiles(connection, end)
        mismatch: list[Problem] = []

        def compare(piece: merkle.Piece) -> None:
            if store.stored_level(piece) and not mismatch:
                stored = expected.get((piece.level, piece.index))
                if stored != piece.hash:
                    mismatch.append(_tile_problem(piece, stored))

        for row in rows:
            problem = self._checkpoints_at(pending) or self._leaf(row)
            if problem is not None:
                return problem, len(rows)
            self.compact.append(row.leaf_hash, compare)
            self.since.append(row.leaf_hash)
            self.position += 1
            if mismatch:
                return mismatch[0], len(rows)
        return self._checkpoints_at(pending), len(rows)

    async def finish(self, connection: AsyncConnection) -> Problem | None:
        """At the end of the log: nothing signed beyond it, tiles neither missing nor extra."""
        for checkpoint in await store.checkpoints(connection, self.previous_size + 1):
            if checkpoint.tree_size == self.compact.end:
                problem = self._checkpoint(checkpoint)
                if problem is not None:
                    return problem
                continue
            return Problem(
                "truncated",
                f"checkpoint {checkpoint.tree_size} (signed {checkpoint.at:%Y-%m-%d %H:%M:%S}Z)"
                f" covers more leaves than the {self.position} of the journal",
                self.position,
            )
        for level, count in (await store.node_levels(connection)).items():
            if count != self.position >> level:
                return Problem(
                    "tiles_mismatch",
                    f"{count} stored subtrees of height {level} for {self.position} leaves",
                )
        return None

    async def _stored_tiles(
        self, connection: AsyncConnection, end: int
    ) -> dict[tuple[int, int], bytes]:
        tiles: dict[tuple[int, int], bytes] = {}
        level = store.TILE_HEIGHT
        while end >> level:
            found = await store.stored_nodes(
                connection, level, self.position >> level, (end >> level) + 1
            )
            tiles.update({(level, index): value for index, value in found.items()})
            level += store.TILE_HEIGHT
        return tiles

    def _leaf(self, row: Row[Any]) -> Problem | None:
        index = int(row.leaf_index)
        if index != self.position:
            return Problem("gap", f"leaf {self.position} is missing (next is {index})", index)
        if row.record is None:
            if row.purged_at is None:
                return Problem("record_missing", "no record and not purged", index)
            self.purged += 1
            return None
        if not isinstance(row.record, bytes) or not isinstance(row.leaf_hash, bytes):
            # A tampered row may hold another type (SQLite's replace() returns TEXT): that
            # is a breach to report, not an error that would stop the check from running.
            return Problem("record_malformed", "a record or leaf hash is not bytes", index)
        if merkle.leaf_hash(row.record) != row.leaf_hash:
            return Problem("leaf_hash_mismatch", "the record does not hash to its leaf", index)
        return _content_problem(row, index)

    def _checkpoints_at(self, pending: Sequence[StoredCheckpoint]) -> Problem | None:
        for checkpoint in pending:
            if checkpoint.tree_size == self.compact.end:
                problem = self._checkpoint(checkpoint)
                if problem is not None:
                    return problem
        return None

    def _checkpoint(self, checkpoint: StoredCheckpoint) -> Problem | None:
        size = checkpoint.tree_size
        try:
            opened = self.verifier.open(checkpoint.note)
        except NoteError as exc:
            return Problem("checkpoint_signature", f"checkpoint {size}: {exc}")
        if (opened.size, opened.root) != (size, checkpoint.root_hash):
            return Problem("checkpoint_columns", f"checkpoint {size}: columns differ from its note")
        root = self.compact.root()
        if root != opened.root:
            return Problem(
                "checkpoint_root_mismatch",
                f"the first {size} leaves no longer hash to the root signed at "
                f"{opened.time:%Y-%m-%d %H:%M:%S}Z: leaves before {size} were changed "
                f"(after checkpoint {max(self.previous_size, 0)} if that one verified)",
            )
        if not self._consistent(size, root):
            return Problem("consistency", f"checkpoint {size} is not consistent with the previous")
        self.previous_size, self.previous_root = size, root
        self.previous_compact = self.compact.copy()
        self.since = merkle.CompactRange(size, size)
        self.checkpoints += 1
        return None

    def _consistent(self, size: int, root: bytes) -> bool:
        """RFC 9162 §2.1.4: prove and verify, previous checkpoint → this one."""
        first = max(self.previous_size, 0)
        path: list[bytes] = []
        if 0 < first < size:
            oracle = merkle.ranges_subtree(self.previous_compact, self.since)
            path = merkle.consistency_proof(first, size, oracle)
        return merkle.consistent(
            first=first, second=size, first_root=self.previous_root, second_root=root, path=path
        )


def _content_problem(row: Row[Any], index: int) -> Problem | None:
    """A record must be canonical, and the indexed columns copies of its fields."""
    try:
        record = decode(row.record)
    except RecordError as exc:
        return Problem("record_malformed", str(exc), index)
    tag = record.tag if isinstance(record, EventRecord) else None
    copies = (row.kind, row.retention, utc(row.at), row.id_teleservice, row.tag)
    if copies != (record.kind, record.retention, record.at, record.id_teleservice, tag):
        return Problem("columns_mismatch", "indexed columns differ from the record", index)
    return None


def _tile_problem(piece: merkle.Piece, stored: bytes | None) -> Problem:
    what = "is missing" if stored is None else "differs from the leaves"
    return Problem(
        "tile_mismatch",
        f"the stored subtree of leaves [{piece.start}, {piece.end}) {what}",
        piece.start,
    )


async def verify(
    journal: JournalStore,
    verifier: NoteVerifier,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = store.READ_CHUNK,
) -> VerifyResult:
    """Verify the whole journal (see the module docstring); the first problem if any."""
    scanner = Scanner(verifier)
    async with journal.read() as connection:
        total = await store.size(connection)
        problem = await _scan(connection, scanner, chunk, progress, total)
        latest = await store.latest_checkpoint(connection)
    return VerifyResult(
        size=scanner.position,
        checkpoints=scanner.checkpoints,
        purged=scanner.purged,
        problem=problem,
        latest=latest,
    )


async def _scan(
    connection: AsyncConnection,
    scanner: Scanner,
    chunk: int,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> Problem | None:
    while True:
        problem, read = await scanner.advance(connection, chunk)
        if problem is not None:
            return problem
        if progress is not None:
            progress(scanner.position, total)
        if read == 0:
            return await scanner.finish(connection)


# -- alarms ------------------------------------------------------------------------------


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
) -> tuple[VerifyResult, int]:
    """Verify the whole journal, then clear the open alarms; how many were cleared."""
    result = await verify(journal, verifier)
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
    ) -> None:
        self.store = journal
        self.verifier = verifier
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
        self._stopper = Stopper()

    async def start(self) -> None:
        """Check once now (the app does not serve before), then every ``interval``."""
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="journal-monitor")

    async def close(self) -> None:
        self._stopper.stop()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while not await self._stopper.sleep(self.interval):
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
        problem = await _scan(connection, tail, MONITOR_CHUNK, None, size)
        return problem or await self._scrub_some(connection)

    async def _baseline(self, connection: AsyncConnection) -> Problem | None:
        """Trust nothing but the signature: the latest checkpoint against the tiles."""
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
