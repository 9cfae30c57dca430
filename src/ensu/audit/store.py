"""Where the Merkle log lives, and the reads and writes it needs (R-TR-2).

Decision: on SQLite the journal has **its own database file**, ``var/journal.db``, with
``synchronous=FULL`` (every commit is fsynced: a record is durable when ``append``
returns) while the main database keeps ``NORMAL``; writes to the journal never wait for
the main database's single writer, and the journal store can fail (or be locked, or be
read-only) on its own, which is what "journal unavailable" means. Its schema is the
journal tables of the migrations, created on first use (``PRAGMA user_version`` marks
it). On PostgreSQL the journal is the same tables in the main database, kept
append-only by triggers (see the migration and :mod:`ensu.audit.retention`).

Every write transaction holds the journal's write lock (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL), reads the current size and appends after
it, so several processes may append to one journal and indices stay contiguous. Read
transactions see one snapshot (``REPEATABLE READ`` on PostgreSQL), so a checkpoint and
the leaves it covers are always seen together.

Tiles: the hashes of the perfect subtrees of height 8, 16, 24 ... are stored as they
complete (``journal_nodes``), so any perfect subtree costs at most 128 stored hashes
folded together, the right edge of the tree at any size a few hundred, and an inclusion
proof a few dozen small reads, whatever the size of the log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Row, event, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ensu import files
from ensu.audit import merkle
from ensu.audit.models import JOURNAL_TABLES, JournalCheckpoint, JournalLeaf, JournalNode
from ensu.config import Settings
from ensu.db import Base, make_engine

#: Stored subtree heights are the multiples of this (the height of a tile).
TILE_HEIGHT = 8
SCHEMA_VERSION = 1
#: Any constant: the PostgreSQL advisory lock that serialises appends to the journal.
ADVISORY_LOCK = 0x656E_7375_6A6E  # "ensujn"
READ_CHUNK = 4096


class StoreError(RuntimeError):
    """The journal store is missing its tables or is not what it should be."""


def journal_url(settings: Settings) -> str:
    """The journal's database: ``var/journal.db`` on SQLite, the main database otherwise."""
    if settings.is_sqlite:
        return f"sqlite+aiosqlite:///{settings.var_dir / 'journal.db'}"
    return settings.database_url


def utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes: the journal only ever stores UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class LeafRow:
    """A row of ``journal_leaves`` to insert (the index is given by the writer)."""

    leaf_hash: bytes
    record: bytes
    kind: str
    retention: str
    at: dt.datetime
    id_teleservice: str | None
    tag: str | None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    at: dt.datetime
    key_id: str
    signature: bytes
    note: str


def _sqlite_engine(url: str, *, write: bool, busy_timeout_ms: int) -> AsyncEngine:
    files.sqlite_file(url)  # 0600 whatever the umask, and so its -wal and -shm
    engine = create_async_engine(url)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, explicitly
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # fsync at every commit: durability
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    def on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock first: size read and append cannot interleave.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
    return engine


_SQLITE = sqlite.dialect()
_datetime_bind = JournalLeaf.__table__.c.at.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
assert _datetime_bind is not None  # SQLite's DateTime stores text
#: A datetime as SQLAlchemy's SQLite ``DateTime`` stores it (the same bytes either path).
_DATETIME: Callable[[Any], Any] = _datetime_bind
_INSERT_LEAF = (
    "INSERT INTO journal_leaves (leaf_index, leaf_hash, record, kind, retention, at,"
    " id_teleservice, tag, purged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)"
)
_INSERT_NODE = "INSERT INTO journal_nodes (level, node_index, hash) VALUES (?, ?, ?)"
_INSERT_CHECKPOINT = (
    "INSERT INTO journal_checkpoints (tree_size, root_hash, at, key_id, signature, note)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING"
)


class SQLiteBatchWriter:
    """A batch appended to the SQLite journal in **one** hop to a thread of its own.

    Through SQLAlchemy and aiosqlite a batch cost one hop per statement, each a wait for
    the GIL behind a busy event loop, and a compilation: about 2.5 ms of CPU per commit,
    more than half the CPU of a call (the bench's profile). Here the writer computes the
    tree's new edge, tiles and checkpoint in the loop, and this thread runs the whole
    transaction with the standard library's ``sqlite3`` (which releases the GIL while
    SQLite works): ``BEGIN IMMEDIATE``, the size, the inserts, ``COMMIT`` (fsynced,
    ``synchronous=FULL``). If another process appended meanwhile the size differs: the
    transaction is rolled back and the writer takes its general path for that batch.
    Same tables, same bytes as the SQLAlchemy path (dates through the column's own type).
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ensu-journal")
        self._connection: sqlite3.Connection | None = None  # used in that thread only
        #: Transactions committed (metrics and tests, as the engine's commit events).
        self.commits = 0

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        self._connection = connection
        return connection

    def _write(
        self,
        first: int,
        rows: Sequence[LeafRow],
        tiles: Sequence[merkle.Piece],
        checkpoint: StoredCheckpoint | None,
        previous: int,
    ) -> tuple[bool, bool]:
        connection = self._connection or self._open()
        try:
            connection.execute("BEGIN IMMEDIATE")
            (highest,) = connection.execute("SELECT max(leaf_index) FROM journal_leaves").fetchone()
            if (0 if highest is None else int(highest) + 1) != first:
                connection.execute("ROLLBACK")
                return False, False
            if checkpoint is not None:  # the note names its predecessor: it must be the latest
                (signed,) = connection.execute(
                    "SELECT max(tree_size) FROM journal_checkpoints"
                ).fetchone()
                if (-1 if signed is None else int(signed)) != previous:
                    connection.execute("ROLLBACK")
                    return False, False
            # One multi-row statement each, not executemany: sqlite3 gives the GIL back
            # around every step, and each step's return then waits for a busy loop.
            if rows:
                connection.execute(
                    _INSERT_LEAF + ", (?, ?, ?, ?, ?, ?, ?, ?, NULL)" * (len(rows) - 1),
                    [
                        value
                        for offset, row in enumerate(rows)
                        for value in (
                            first + offset,
                            row.leaf_hash,
                            row.record,
                            row.kind,
                            row.retention,
                            _DATETIME(row.at),
                            row.id_teleservice,
                            row.tag,
                        )
                    ],
                )
            if tiles:
                connection.execute(
                    _INSERT_NODE + ", (?, ?, ?)" * (len(tiles) - 1),
                    [value for piece in tiles for value in (piece.level, piece.index, piece.hash)],
                )
            inserted = False
            if checkpoint is not None:
                cursor = connection.execute(
                    _INSERT_CHECKPOINT,
                    (
                        checkpoint.tree_size,
                        checkpoint.root_hash,
                        _DATETIME(checkpoint.at),
                        checkpoint.key_id,
                        checkpoint.signature,
                        checkpoint.note,
                    ),
                )
                inserted = cursor.rowcount == 1
            connection.execute("COMMIT")
            self.commits += 1
            return True, inserted
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        # A failed transaction (or connection): close it; the next batch reopens.
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    async def write(
        self,
        first: int,
        rows: Sequence[LeafRow],
        tiles: Sequence[merkle.Piece],
        checkpoint: StoredCheckpoint | None,
        previous: int = -1,
    ) -> tuple[bool, bool]:
        """Append ``rows`` from index ``first``: (written, checkpoint inserted);
        (False, False) when the journal no longer ends at ``first``, or (with a
        ``checkpoint``) when its latest checkpoint is no longer of size ``previous``
        (-1: none), the one the new checkpoint's note names."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, self._write, first, rows, tiles, checkpoint, previous
        )

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._discard)
        self._thread.shutdown(wait=True)


class JournalStore:
    """The journal's database: write transactions, reads, tiles, checkpoints."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int = 5000, timeout: float | None = None
    ) -> None:
        """``timeout`` (PostgreSQL): the bound of each step of a transaction (see
        :func:`ensu.db.make_engine`), so that a slow or cut database fails the batch —
        503 930002 for its callers — instead of holding their responses forever."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        #: The one-hop batch path (SQLite files only), see :class:`SQLiteBatchWriter`.
        self.batch_writer: SQLiteBatchWriter | None = None
        if self.is_sqlite:
            self._writer = _sqlite_engine(url, write=True, busy_timeout_ms=busy_timeout_ms)
            self._reader = _sqlite_engine(url, write=False, busy_timeout_ms=busy_timeout_ms)
            database = url.split("///", 1)[-1]
            if database and database != ":memory:":
                self.batch_writer = SQLiteBatchWriter(
                    Path(database), busy_timeout_ms=busy_timeout_ms
                )
        else:
            self._writer = make_engine(url, timeout=timeout, pool_size=2, max_overflow=2)
            self._reader = self._writer.execution_options(isolation_level="REPEATABLE READ")

    @property
    def write_engine(self) -> AsyncEngine:
        """The engine of the write transactions (metrics and tests count its commits)."""
        return self._writer

    @classmethod
    def for_settings(cls, settings: Settings, *, bounded: bool = False) -> JournalStore:
        """The journal of ``settings``; ``bounded``: the app's, whose every step is
        bounded by ``ENSU_STORE_TIMEOUT_SECONDS`` (commands wait as long as needed).

        On SQLite a writer waits for another process's lock (``busy_timeout``) at most
        ``ENSU_STORE_TIMEOUT_SECONDS`` too, app and commands alike: past it the batch
        fails (503 930002 for the app's callers) rather than holding them longer."""
        return cls(
            journal_url(settings),
            busy_timeout_ms=max(1, round(settings.store_timeout_seconds * 1000)),
            timeout=settings.store_timeout_seconds if bounded else None,
        )

    async def dispose(self) -> None:
        if self.batch_writer is not None:
            await self.batch_writer.close()
            self.batch_writer = None
        await self._writer.dispose()
        if self.is_sqlite:
            await self._reader.dispose()

    async def ensure_schema(self) -> None:
        """Create the journal file's tables (SQLite); check they exist (PostgreSQL)."""
        async with self._writer.begin() as connection:
            if self.is_sqlite:
                version = (await connection.exec_driver_sql("PRAGMA user_version")).scalar()
                if version == 0:
                    await connection.run_sync(_create_tables)
                    await connection.exec_driver_sql(f"PRAGMA user_version={SCHEMA_VERSION}")
                elif version != SCHEMA_VERSION:
                    raise StoreError(f"journal schema version {version} is not {SCHEMA_VERSION}")
                return
            names = await connection.run_sync(lambda sync: set(sync.dialect.get_table_names(sync)))
            missing = [t.name for t in JOURNAL_TABLES if t.name not in names]
            if missing:
                raise StoreError(f"journal tables missing ({', '.join(missing)}): ensu db upgrade")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction holding the journal's write lock; commits on success."""
        async with self._writer.begin() as connection:
            if not self.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK}
                )
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction on one snapshot."""
        async with self._reader.begin() as connection:
            yield connection


def _create_tables(sync_connection: Any) -> None:
    Base.metadata.create_all(sync_connection, tables=list(JOURNAL_TABLES))


# -- reads -------------------------------------------------------------------------------


async def size(connection: AsyncConnection) -> int:
    """The number of leaves: one more than the highest index (indices start at 0)."""
    highest = await connection.scalar(select(func.max(JournalLeaf.leaf_index)))
    return 0 if highest is None else int(highest) + 1


async def leaves(connection: AsyncConnection, start: int, limit: int) -> Sequence[Row[Any]]:
    """Up to ``limit`` leaf rows from index ``start`` on, in index order."""
    query = (
        select(JournalLeaf.__table__)
        .where(JournalLeaf.leaf_index >= start)
        .order_by(JournalLeaf.leaf_index)
        .limit(limit)
    )
    return (await connection.execute(query)).all()


async def leaf_hashes(connection: AsyncConnection, start: int, end: int) -> list[bytes]:
    query = (
        select(JournalLeaf.leaf_hash)
        .where(JournalLeaf.leaf_index >= start, JournalLeaf.leaf_index < end)
        .order_by(JournalLeaf.leaf_index)
    )
    hashes = list((await connection.scalars(query)).all())
    if len(hashes) != end - start:
        raise StoreError(f"leaves [{start}, {end}) are incomplete ({len(hashes)} found)")
    return hashes


async def nodes(connection: AsyncConnection, level: int, start: int, end: int) -> list[bytes]:
    query = (
        select(JournalNode.hash)
        .where(JournalNode.level == level)
        .where(JournalNode.node_index >= start, JournalNode.node_index < end)
        .order_by(JournalNode.node_index)
    )
    hashes = list((await connection.scalars(query)).all())
    if len(hashes) != end - start:
        raise StoreError(f"subtrees [{start}, {end}) of height {level} are incomplete")
    return hashes


async def stored_nodes(
    connection: AsyncConnection, level: int, start: int, end: int
) -> dict[int, bytes]:
    query = (
        select(JournalNode.node_index, JournalNode.hash)
        .where(JournalNode.level == level)
        .where(JournalNode.node_index >= start, JournalNode.node_index < end)
    )
    return {int(row[0]): row[1] for row in await connection.execute(query)}


async def node_levels(connection: AsyncConnection) -> dict[int, int]:
    """How many subtrees are stored at each height (verification counts them)."""
    query = select(JournalNode.level, func.count()).group_by(JournalNode.level)
    return {int(row[0]): int(row[1]) for row in await connection.execute(query)}


async def perfect(connection: AsyncConnection, level: int, index: int) -> bytes:
    """The hash of the perfect subtree ``(level, index)``, from the tiles below it."""
    base = level - level % TILE_HEIGHT
    span = level - base
    first, last = index << span, (index + 1) << span
    if base == 0:
        row = await leaf_hashes(connection, first, last)
    else:
        row = await nodes(connection, base, first, last)
    for _ in range(span):
        row = [merkle.node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


class TileReader:
    """Perfect subtrees read from the store, each once (the proofs of an export share)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.cache: dict[tuple[int, int], bytes] = {}

    async def fetch(self, wanted: Iterable[tuple[int, int]]) -> None:
        for level, index in wanted:
            if (level, index) not in self.cache:
                self.cache[level, index] = await perfect(self.connection, level, index)

    def subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` of fetched pieces (a merkle ``Subtree`` oracle)."""
        pieces = [
            merkle.Piece(level, index, self.cache[level, index])
            for level, index in merkle.perfect_pieces(start, end)
        ]
        return merkle.fold(pieces)

    async def compact_range(self, tree_size: int) -> merkle.CompactRange:
        """The right edge of the tree of ``tree_size`` leaves."""
        wanted = merkle.perfect_pieces(0, tree_size)
        await self.fetch(wanted)
        pieces = [merkle.Piece(level, index, self.cache[level, index]) for level, index in wanted]
        return merkle.CompactRange(0, tree_size, pieces)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 ``PROOF(first, D[second])``; empty when ``first`` is 0 or
        ``second`` (the trivial cases, :func:`ensu.audit.merkle.consistent`)."""
        if first in (0, second):
            return []
        named: list[tuple[int, int]] = []

        def record(start: int, end: int) -> bytes:
            named.append((start, end))
            return b""

        merkle.consistency_proof(first, second, record)
        await self.fetch(
            piece for start, end in named for piece in merkle.perfect_pieces(start, end)
        )
        return merkle.consistency_proof(first, second, self.subtree)

    async def inclusion_proofs(self, indices: Sequence[int], tree_size: int) -> list[list[bytes]]:
        """RFC 9162 §2.1.3.1 proofs of ``indices`` in the tree of ``tree_size`` leaves."""
        named: list[tuple[int, int]] = []

        def record(start: int, end: int) -> bytes:
            named.append((start, end))
            return b""

        for index in indices:
            merkle.inclusion_path(index, tree_size, record)
        await self.fetch(
            piece for start, end in named for piece in merkle.perfect_pieces(start, end)
        )
        return [merkle.inclusion_path(index, tree_size, self.subtree) for index in indices]


# -- writes ------------------------------------------------------------------------------


async def insert_leaves(connection: AsyncConnection, first: int, rows: Sequence[LeafRow]) -> None:
    """The rows of a whole batch, in the batch's one transaction (group commit).

    One INSERT, prepared once and executed for all the rows (the driver's
    ``executemany``: a loop inside SQLite, a pipeline on psycopg). A literal multi-row
    ``VALUES`` statement was measured slower: SQLAlchemy compiles it anew for each batch
    size, about 8 ms for 500 rows, while the commit's fsync is what a batch shares.
    """
    if not rows:
        return
    values = [
        {
            "leaf_index": first + offset,
            "leaf_hash": row.leaf_hash,
            "record": row.record,
            "kind": row.kind,
            "retention": row.retention,
            "at": row.at,
            "id_teleservice": row.id_teleservice,
            "tag": row.tag,
            "purged_at": None,
        }
        for offset, row in enumerate(rows)
    ]
    await connection.execute(insert(JournalLeaf), values)


async def insert_nodes(connection: AsyncConnection, pieces: Sequence[merkle.Piece]) -> None:
    if pieces:
        values = [{"level": p.level, "node_index": p.index, "hash": p.hash} for p in pieces]
        await connection.execute(insert(JournalNode).values(values))


def stored_level(piece: merkle.Piece) -> bool:
    """Whether a subtree is kept as a tile (height a positive multiple of 8)."""
    return piece.level % TILE_HEIGHT == 0 and piece.level > 0


async def insert_checkpoint(connection: AsyncConnection, checkpoint: StoredCheckpoint) -> bool:
    """Insert ``checkpoint`` unless one of that size exists; whether it was inserted."""
    values = {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "at": checkpoint.at,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
        "note": checkpoint.note,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(JournalCheckpoint).values(values)
    result = await connection.execute(
        statement.on_conflict_do_nothing(index_elements=["tree_size"])
    )
    return bool(result.rowcount)


def _checkpoint(row: Row[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        tree_size=int(row.tree_size),
        root_hash=row.root_hash,
        at=utc(row.at),
        key_id=row.key_id,
        signature=row.signature,
        note=row.note,
    )


async def latest_checkpoint(connection: AsyncConnection) -> StoredCheckpoint | None:
    query = (
        select(JournalCheckpoint.__table__).order_by(JournalCheckpoint.tree_size.desc()).limit(1)
    )
    row = (await connection.execute(query)).first()
    return None if row is None else _checkpoint(row)


async def latest_checkpoint_size(connection: AsyncConnection) -> int:
    """The size of the latest checkpoint, -1 if none (what a new checkpoint names)."""
    highest = await connection.scalar(select(func.max(JournalCheckpoint.tree_size)))
    return -1 if highest is None else int(highest)


async def checkpoints(
    connection: AsyncConnection, low: int, high: int | None = None
) -> list[StoredCheckpoint]:
    """Checkpoints with ``low <= tree_size`` (``<= high`` if given), by size."""
    query = select(JournalCheckpoint.__table__).where(JournalCheckpoint.tree_size >= low)
    if high is not None:
        query = query.where(JournalCheckpoint.tree_size <= high)
    rows = await connection.execute(query.order_by(JournalCheckpoint.tree_size))
    return [_checkpoint(row) for row in rows]
