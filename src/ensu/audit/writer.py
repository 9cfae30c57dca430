"""The journal writer: durable appends with group commit (R-TR-2, ARCHITECTURE step 4).

``await writer.append(record)`` returns the record's leaf index once the record is
*durably committed* — no document may leave before that (R-TR-2). Concurrent callers
share commits: one task takes every record queued so far (up to ``max_batch``), writes
them in one transaction — one multi-row INSERT, the new tiles, maybe a checkpoint — and
one fsync, then wakes their callers. The next batch is whatever queued meanwhile: the
batch closes when the previous commit finishes, with no timer, so a lone request pays
one commit and a burst pays one commit per ``max_batch`` records.

The tree's right edge (:class:`~ensu.audit.merkle.CompactRange`) lives in memory: an
append costs ``O(log n)`` hashes and never rereads the log. At start (and when another
process appended meanwhile) it is rebuilt from the stored tiles at the current size.

Checkpoints are signed and stored in the same transaction as a batch, every
``checkpoint_every`` records or ``checkpoint_interval`` seconds after the last one
(an idle journal gets one for its last records), and on demand (:meth:`checkpoint`).

If the store fails, the callers of that batch and every later caller get
:class:`~ensu.audit.errors.JournalUnavailableError` at once (the API answers 503 930002)
while a background task probes the store, with backoff, until it answers again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ensu.audit import merkle, store
from ensu.audit.errors import JournalUnavailableError
from ensu.audit.note import Checkpoint, NoteSigner
from ensu.audit.records import CallRecord, EventRecord, Record, encode
from ensu.audit.store import JournalStore, LeafRow, StoredCheckpoint
from ensu.audit.witness import CheckpointWitness
from ensu.background import StopSignal

logger = logging.getLogger("ensu.audit")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def leaf_row(record: Record) -> LeafRow:
    """The row of ``record``: its canonical bytes, leaf hash and indexed copies."""
    data = encode(record)
    return LeafRow(
        leaf_hash=merkle.leaf_hash(data),
        record=data,
        kind=str(record.kind),
        retention=str(record.retention),
        at=record.at,
        id_teleservice=record.id_teleservice,
        tag=record.tag if isinstance(record, EventRecord) else None,
    )


@dataclass(slots=True)
class WriterStats:
    """Counters for tests, metrics and the report of ``ensu journal status``."""

    commits: int = 0
    batches: int = 0
    records: int = 0
    checkpoints: int = 0
    largest_batch: int = 0
    failures: int = 0


@dataclass(slots=True)
class _Append:
    row: LeafRow
    future: asyncio.Future[int]


@dataclass(slots=True)
class _CheckpointRequest:
    future: asyncio.Future[StoredCheckpoint] | None


_Item = _Append | _CheckpointRequest | None  # None stops the writer


def sign_checkpoint(
    signer: NoteSigner, compact: merkle.CompactRange, at: dt.datetime, previous: int = -1
) -> StoredCheckpoint:
    """The signed checkpoint of the tree whose right edge is ``compact``; its note names
    the size ``previous`` of the latest checkpoint before it (-1: none, R-TR-2 chain)."""
    moment = at.replace(microsecond=at.microsecond // 1000 * 1000)
    checkpoint = Checkpoint(
        origin=signer.name,
        size=compact.end,
        root=compact.root(),
        time=moment,
        previous=None if previous < 0 else previous,
    )
    note = signer.sign(checkpoint)
    return StoredCheckpoint(
        tree_size=checkpoint.size,
        root_hash=checkpoint.root,
        at=moment,
        key_id=signer.key_id,
        signature=signer.signature_of(note),
        note=note,
    )


async def checkpoint_now(
    journal: JournalStore,
    signer: NoteSigner,
    at: dt.datetime | None = None,
    witness: CheckpointWitness | None = None,
) -> StoredCheckpoint:
    """Sign a checkpoint of the journal as it is (for the CLI: no writer running); kept
    outside the database by ``witness`` (R-TR-2, :mod:`ensu.audit.witness`)."""
    checkpoint = await _checkpoint_now(journal, signer, at)
    if witness is not None:
        witness.offer(checkpoint)
        await witness.flush()
    return checkpoint


async def _checkpoint_now(
    journal: JournalStore, signer: NoteSigner, at: dt.datetime | None
) -> StoredCheckpoint:
    async with journal.write() as connection:
        size = await store.size(connection)
        latest = await store.latest_checkpoint_size(connection)
        if latest == size:
            return (await store.checkpoints(connection, size, size))[0]
        compact = await store.TileReader(connection).compact_range(size)
        checkpoint = sign_checkpoint(signer, compact, at or utc_now(), latest)
        await store.insert_checkpoint(connection, checkpoint)
    return checkpoint


def _extend(compact: merkle.CompactRange, appends: Sequence[_Append]) -> list[merkle.Piece]:
    """Append the batch's leaves to ``compact``; the completed subtrees kept as tiles."""
    tiles: list[merkle.Piece] = []

    def keep(piece: merkle.Piece) -> None:
        if store.stored_level(piece):
            tiles.append(piece)

    for item in appends:
        compact.append(item.row.leaf_hash, keep)
    return tiles


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a failure is logged by the writer already


class JournalWriter:
    """Appends records durably, many per commit; see the module docstring."""

    def __init__(
        self,
        journal: JournalStore,
        signer: NoteSigner,
        *,
        max_batch: int = 500,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 10.0,
        retry_interval: float = 1.0,
        clock: Callable[[], dt.datetime] = utc_now,
        witness: CheckpointWitness | None = None,
    ) -> None:
        """``witness``: keeps each signed checkpoint outside the database (R-TR-2)."""
        self.store = journal
        self.signer = signer
        self.witness = witness
        self.max_batch = max_batch
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.retry_interval = retry_interval
        self.clock = clock
        self.stats = WriterStats()
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._compact = merkle.CompactRange()
        self._last_checkpoint_size = -1
        self._last_checkpoint_time = 0.0
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._closing = False
        self._stop_signal = StopSignal()

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the tree's right edge and start the commit loop.

        A store that does not answer yet does not prevent the start: appends are refused
        (503 930002) until the background probe finds it.
        """
        self._task = None
        try:
            await self._load()
        except Exception as exc:  # not reachable yet: fail fast and probe
            self._fail(exc, [])
        self._task = asyncio.create_task(self._run(), name="journal-writer")
        if self.checkpoint_interval > 0:
            self._ticker = asyncio.create_task(self._tick(), name="journal-checkpoints")

    async def close(self) -> None:
        """Commit what is queued, sign a last checkpoint over it, then stop: a stopped
        journal leaves no record outside a signed checkpoint."""
        self._closing = True
        self._stop_signal.stop()
        for task in (self._ticker, self._recovery):
            if task is not None:
                await task
        if self._task is not None:
            unsigned = not self._queue.empty() or self._compact.end > self._last_checkpoint_size
            if self._failure is None and self.checkpoint_interval > 0 and unsigned:
                self._queue.put_nowait(_CheckpointRequest(None))  # after what is queued
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        if self.witness is not None:
            await self.witness.flush()

    @property
    def available(self) -> bool:
        """Whether appends are accepted (started, not closing, the store answering)."""
        return self._task is not None and not self._closing and self._failure is None

    @property
    def queue_depth(self) -> int:
        """Items waiting for the writer (appends and checkpoint requests), for metrics."""
        return self._queue.qsize()

    @property
    def size(self) -> int:
        """The number of leaves this writer knows to be committed."""
        return self._compact.end

    async def _load(self) -> None:
        await self.store.ensure_schema()
        async with self.store.read() as connection:
            size = await store.size(connection)
            compact = await store.TileReader(connection).compact_range(size)
            latest = await store.latest_checkpoint(connection)
        self._compact = compact
        self._last_checkpoint_size = -1 if latest is None else latest.tree_size
        self._last_checkpoint_time = asyncio.get_running_loop().time()

    # -- appends -------------------------------------------------------------------------

    async def append(self, record: CallRecord | EventRecord) -> int:
        """Append ``record``; its leaf index once durably committed (R-TR-2).

        Raises :class:`~ensu.audit.errors.JournalUnavailableError` when the store fails
        (now, or earlier and not yet recovered) and
        :class:`~ensu.audit.records.RecordError` for a record the schema refuses.
        """
        row = leaf_row(record)
        if not self.available:
            raise JournalUnavailableError(str(self._failure or "the journal writer is stopped"))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Append(row, future))
        return await future

    def enqueue(self, record: CallRecord | EventRecord) -> bool:
        """Queue ``record`` for the next commit without waiting for it; False if the
        writer refuses appends now. For a call shed under overload: its refusal carries
        no data, so it need not wait for the disk, but it is journaled all the same."""
        if not self.available:
            return False
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._queue.put_nowait(_Append(leaf_row(record), future))
        return True

    async def checkpoint(self) -> StoredCheckpoint:
        """A signed checkpoint covering every record appended before this call."""
        if not self.available:
            raise JournalUnavailableError(str(self._failure or "the journal writer is stopped"))
        future: asyncio.Future[StoredCheckpoint] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_CheckpointRequest(future))
        return await future

    # -- the commit loop -----------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is None:
                return
            batch: list[_Append | _CheckpointRequest] = [item]
            while len(batch) < self.max_batch and not self._queue.empty():
                following = self._queue.get_nowait()
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            await self._commit(batch)

    async def _commit(self, batch: Sequence[_Append | _CheckpointRequest]) -> None:
        appends = [item for item in batch if isinstance(item, _Append)]
        requests = [item for item in batch if isinstance(item, _CheckpointRequest)]
        if self._failure is not None:
            self._fail_items(batch, self._failure)
            return
        try:
            first, compact, checkpoint = await self._transaction(appends, bool(requests))
        except Exception as exc:  # any failure of the store: fail fast until it recovers
            self._fail(exc, batch)
            return
        self._compact = compact
        self._count(len(appends), checkpoint)
        if checkpoint is not None and self.witness is not None:
            self.witness.offer(checkpoint)
        for offset, item in enumerate(appends):
            if not item.future.done():
                item.future.set_result(first + offset)
        for request in requests:
            if request.future is not None and not request.future.done():
                assert checkpoint is not None  # requested, so made or found
                request.future.set_result(checkpoint)

    async def _transaction(
        self, appends: Sequence[_Append], requested: bool
    ) -> tuple[int, merkle.CompactRange, StoredCheckpoint | None]:
        batch_writer = self.store.batch_writer
        if batch_writer is not None:
            done = await self._one_hop(batch_writer, appends, requested)
            if done is not None:
                return done
        async with self.store.write() as connection:
            first = await store.size(connection)
            if first == self._compact.end:
                compact = self._compact.copy()
            else:  # another process appended: rebuild the edge from the tiles
                compact = await store.TileReader(connection).compact_range(first)
            tiles = _extend(compact, appends)
            await store.insert_leaves(connection, first, [item.row for item in appends])
            await store.insert_nodes(connection, tiles)
            checkpoint = None
            if requested or self._checkpoint_due(compact.end):
                latest = await store.latest_checkpoint_size(connection)
                if latest == compact.end:  # another process signed this size
                    checkpoint = (await store.checkpoints(connection, latest, latest))[0]
                else:
                    checkpoint = sign_checkpoint(self.signer, compact, self.clock(), latest)
                    await store.insert_checkpoint(connection, checkpoint)
        return first, compact, checkpoint

    async def _one_hop(
        self, batch_writer: store.SQLiteBatchWriter, appends: Sequence[_Append], requested: bool
    ) -> tuple[int, merkle.CompactRange, StoredCheckpoint | None] | None:
        """The batch on the assumption that the journal still ends where this writer
        left it (the common case); None when another process appended meanwhile."""
        first = self._compact.end
        compact = self._compact.copy()
        tiles = _extend(compact, appends)
        checkpoint = None
        previous = self._last_checkpoint_size
        if requested or self._checkpoint_due(compact.end):
            checkpoint = sign_checkpoint(self.signer, compact, self.clock(), previous)
        rows = [item.row for item in appends]
        written, inserted = await batch_writer.write(first, rows, tiles, checkpoint, previous)
        if not written:
            return None
        if checkpoint is not None and not inserted:  # another process signed this size
            async with self.store.read() as connection:
                checkpoint = (await store.checkpoints(connection, compact.end, compact.end))[0]
        return first, compact, checkpoint

    def _checkpoint_due(self, size: int) -> bool:
        if size <= self._last_checkpoint_size:
            return False
        if size - max(self._last_checkpoint_size, 0) >= self.checkpoint_every:
            return True
        elapsed = asyncio.get_running_loop().time() - self._last_checkpoint_time
        return self.checkpoint_interval > 0 and elapsed >= self.checkpoint_interval

    def _count(self, records: int, checkpoint: StoredCheckpoint | None) -> None:
        stats = self.stats
        stats.commits += 1
        if records:
            stats.batches += 1
            stats.records += records
            stats.largest_batch = max(stats.largest_batch, records)
        if checkpoint is not None:
            stats.checkpoints += 1
            self._last_checkpoint_size = max(self._last_checkpoint_size, checkpoint.tree_size)
            self._last_checkpoint_time = asyncio.get_running_loop().time()

    async def _tick(self) -> None:
        """An idle journal still gets a checkpoint of its last records."""
        while not await self._stop_signal.sleep(self.checkpoint_interval):
            if self.available and self._compact.end > self._last_checkpoint_size:
                self._queue.put_nowait(_CheckpointRequest(None))

    # -- failure and recovery ------------------------------------------------------------

    def _fail(self, exc: BaseException, batch: Sequence[_Append | _CheckpointRequest]) -> None:
        logger.error("journal store failed, appends refused until it recovers: %r", exc)
        self.stats.failures += 1
        self._failure = exc
        self._fail_items(batch, exc)
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name="journal-recovery")

    def _fail_items(
        self, batch: Sequence[_Append | _CheckpointRequest], exc: BaseException
    ) -> None:
        items: list[_Append | _CheckpointRequest] = list(batch)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:  # keep the stop request for the loop
                self._queue.put_nowait(None)
                break
            items.append(item)
        for item in items:
            if item.future is not None and not item.future.done():
                item.future.set_exception(JournalUnavailableError(repr(exc)))

    async def _recover(self) -> None:
        delay = self.retry_interval
        while not await self._stop_signal.sleep(delay):
            try:
                await self._load()
            except Exception as exc:  # still failing: wait longer
                logger.warning("journal store still unavailable: %r", exc)
                delay = min(delay * 2, 5.0)  # back within seconds of the store
                continue
            self._failure = None
            logger.warning("journal store available again, %d leaves", self._compact.end)
            return
