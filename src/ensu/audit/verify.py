"""Verification of the journal, and the integrity stop (R-TR-2).

:func:`verify` reads the whole log in index order, in one snapshot, and checks:

1. indices are contiguous from 0 (a deleted, inserted or renumbered row shows as a gap);
2. each record hashes to its leaf hash (``SHA-256(0x00 || record)``), is a canonical
   record, and its indexed columns are copies of its fields; a purged leaf (record
   ``NULL``, ``purged_at`` set, R-TR-4) is taken at its stored leaf hash, and only if its
   retention had passed at the time of the latest signed checkpoint, counted from the
   signed time of the first checkpoint that covers it (its own time went with its
   record; see :mod:`ensu.audit.retention`, whose purge applies the same rule);
3. each stored tile equals the subtree recomputed from the leaves, and no tile is missing
   or extra;
4. each checkpoint's signature verifies (Ed25519, signed note), its columns match its
   note, its root equals the root recomputed from the leaves at its size, and an
   RFC 9162 §2.1.4 consistency proof from the previous checkpoint verifies;
5. no checkpoint covers more leaves than the log holds (a truncation);
6. each checkpoint's note names its predecessor (``previous <size>``, see
   :mod:`ensu.audit.note`), which must be the checkpoint before it: a deleted
   checkpoint breaks the chain;
7. the latest checkpoint kept *outside* the database (``var/journal/checkpoint.note``,
   :mod:`ensu.audit.witness`), if given: the log must still hold it — its size, its row,
   the same root at that size. A log cut at its end (the last leaves, the checkpoints
   after them and the tiles beyond, all deleted together) verifies on its own; against
   the kept checkpoint it is a rollback.

Editing, deleting, reordering, inserting or truncating rows, and rebuilding the log after
a checkpoint (leaf hashes and tiles recomputed, but not the signature), all fail one of
these; the result names the first problem with its code and leaf index.

Leaves after the last checkpoint are only as good as the store until the next checkpoint
(at most ``checkpoint_interval`` seconds, see :mod:`ensu.audit.writer`); the monitor
covers them, and notices a log that shrinks. An intruder who controls the whole var
directory can cut the log *and* the kept file: what detects that is a witness outside
the host — the external witness endpoint, and every consumer through the API's witness
route (:mod:`ensu.audit.witness`), which compares the checkpoint it kept with a
consistency proof from the log.

The integrity stop
------------------
:class:`IntegrityMonitor` runs in the app: at start, and every ``interval`` seconds
(10 by default), it (a) checks the latest checkpoint — signature, and root recomputed
from the tiles — and, at start, the checkpoint kept outside the database (7.);
(b) verifies every leaf appended since, as above; (c) scrubs the next
``scrub_leaves`` leaves of the whole log from the start, so the full log is reverified
continuously. It reads :data:`MONITOR_CHUNK` leaves at a time and the event loop
serves calls between two chunks: verification is spread over the minute in small
slices, never a pause of seconds (at 5,000 calls/s, a 60 s cycle re-hashed
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

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ensu.audit import merkle, retention, store
from ensu.audit.note import Checkpoint, NoteError, NoteVerifier
from ensu.audit.records import EventRecord, RecordError, decode
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
    #: The size of the checkpoint kept outside the database that the log was compared
    #: with (None: no kept checkpoint was given).
    kept: int | None = None

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
    #: Whether a checkpoint naming its predecessor was seen: every later one must too
    #: (checkpoints signed before the chain existed name none).
    chained: bool = False
    #: The purge cutoff of each retention class at the latest signed checkpoint's time
    #: (None: no signed checkpoint, so no purge is justified), see :func:`purge_cutoffs`.
    cutoffs: dict[str, dt.datetime] | None = None
    #: Purged leaves not yet covered by a checkpoint: the first one, and their classes.
    purged_first: int | None = None
    purged_classes: set[str] = field(default_factory=set)

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
            chained=verifier.open(checkpoint.note).previous is not None,
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
        if self.purged_first is not None:
            return Problem(
                "purge_unjustified",
                "the record was emptied but no signed checkpoint covers its leaf",
                self.purged_first,
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
            if self.purged_first is None:
                self.purged_first = index
            self.purged_classes.add(str(row.retention))
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
        problem = self._chain(opened) or self._purges_justified(opened)
        if problem is not None:
            return problem
        self.previous_size, self.previous_root = size, root
        self.previous_compact = self.compact.copy()
        self.since = merkle.CompactRange(size, size)
        self.checkpoints += 1
        return None

    def _chain(self, opened: Checkpoint) -> Problem | None:
        """The note names the checkpoint verified just before it (R-TR-2)."""
        expected = None if self.previous_size < 0 else self.previous_size
        if opened.previous is None and not self.chained:
            return None  # the first checkpoint, or one signed before the chain existed
        if opened.previous != expected:
            return Problem(
                "checkpoint_chain",
                f"checkpoint {opened.size} names checkpoint {opened.previous} as its"
                f" predecessor, the journal holds {expected} before it: a checkpoint was"
                " deleted",
            )
        self.chained = True
        return None

    def _purges_justified(self, opened: Checkpoint) -> Problem | None:
        """Purged leaves since the previous checkpoint: ``opened`` is the first to cover
        them, so no record of theirs is younger than its signed time."""
        first = self.purged_first
        if first is None:
            return None
        for name in sorted(self.purged_classes):
            cutoff = None if self.cutoffs is None else self.cutoffs.get(name)
            if cutoff is None or opened.time > cutoff:
                return Problem(
                    "purge_unjustified",
                    f"the record was emptied before its retention ({name}) had passed at"
                    f" the latest signed checkpoint: checkpoint {opened.size}, the first to"
                    f" cover it, was signed {opened.time:%Y-%m-%d %H:%M:%S}Z",
                    first,
                )
        self.purged_first = None
        self.purged_classes.clear()
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


def purge_cutoffs(
    verifier: NoteVerifier, latest: StoredCheckpoint | None, exchange_days: int
) -> dict[str, dt.datetime] | None:
    """The cutoff of each retention class at the latest checkpoint's *signed* time: a
    purged leaf is justified when the first checkpoint covering it was signed no later."""
    if latest is None:
        return None
    try:
        signed = verifier.open(latest.note).time
    except NoteError:
        return None  # the scan reports the signature itself
    limits = retention.cutoffs(now=signed, exchange_days=exchange_days)
    return {str(name): cutoff for name, cutoff in limits.items()}


async def compare_kept(
    connection: AsyncConnection, verifier: NoteVerifier, kept: str
) -> Problem | None:
    """The log against the checkpoint kept outside the database (7. of the module
    docstring): still as long, that checkpoint still stored, the same root at its size."""
    try:
        checkpoint = verifier.open(kept)
    except NoteError as exc:
        return Problem("kept_checkpoint", f"the checkpoint kept outside the database: {exc}")
    signed = f"{checkpoint.time:%Y-%m-%d %H:%M:%S}Z"
    size = await store.size(connection)
    if size < checkpoint.size:
        return Problem(
            "rollback",
            f"the journal holds {size} leaves, the checkpoint kept outside the database"
            f" signed {checkpoint.size} at {signed}: its end was cut",
            size,
        )
    stored = await store.checkpoints(connection, checkpoint.size, checkpoint.size)
    if not stored:
        return Problem(
            "checkpoint_missing",
            f"checkpoint {checkpoint.size} (signed {signed}), kept outside the database,"
            " is no longer in the journal: it was deleted",
        )
    try:
        root = (await store.TileReader(connection).compact_range(checkpoint.size)).root()
    except store.StoreError as exc:
        return Problem("rollback", f"the tree at the kept checkpoint's size: {exc}")
    if stored[0].root_hash != checkpoint.root or root != checkpoint.root:
        return Problem(
            "rollback",
            f"the tree of {checkpoint.size} leaves no longer has the root signed at {signed}"
            " in the checkpoint kept outside the database: the log was replaced",
        )
    return None


async def verify(
    journal: JournalStore,
    verifier: NoteVerifier,
    *,
    kept: str | None = None,
    exchange_days: int = retention.DEFAULT_EXCHANGE_DAYS,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = store.READ_CHUNK,
) -> VerifyResult:
    """Verify the whole journal (see the module docstring); the first problem if any.

    ``kept``: the signed note of the checkpoint kept outside the database (7.);
    ``exchange_days``: the retention of exchange data, which justifies purges (2.).
    """
    scanner = Scanner(verifier)
    async with journal.read() as connection:
        total = await store.size(connection)
        latest = await store.latest_checkpoint(connection)
        scanner.cutoffs = purge_cutoffs(verifier, latest, exchange_days)
        problem = None if kept is None else await compare_kept(connection, verifier, kept)
        if problem is None:
            problem = await scan(connection, scanner, chunk, progress, total)
    return VerifyResult(
        size=scanner.position,
        checkpoints=scanner.checkpoints,
        purged=scanner.purged,
        problem=problem,
        latest=latest,
        kept=None if kept is None else _size_of(kept),
    )


def _size_of(note: str) -> int | None:
    try:
        return Checkpoint.parse(note.rpartition("\n\n")[0] + "\n").size
    except NoteError:
        return None


async def scan(
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
