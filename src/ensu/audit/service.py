"""The one entry point through which every feature journals (R-TR-1, R-TR-2, R-OPS-1).

Two kinds of records go to the same Merkle log:

- the record of each API call, appended by the gateway through :class:`Journal`
  (``await journal.append(CallRecord(...))`` returns once it is durable);
- the events of the features, through :func:`record_event`. An event is written in the
  caller's own transaction to ``audit_events`` (an outbox: the event exists if and only
  if the change it describes was committed), then the :class:`EventRelay` appends it to
  the log as an :class:`~ensu.audit.records.EventRecord` and notes its leaf index. The
  relay is at-least-once: a crash between the append and the note appends the event
  again, with the same ``event_id``, which shows. Events recorded by CLI commands wait in
  the outbox until the app (or ``ensu journal relay``) runs.

Nothing else writes the journal. Alerts (R-OPS-1) are logged at warning level.

For the app's lifespan::

    journal = await Journal.open(settings=settings, sessionmaker=sessionmaker)
    ...
    journal.ensure_serving()            # raises 503 930002 when stopped or unavailable
    index = await journal.append(CallRecord(...))
    ...
    await journal.close()
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import keys
from ensu.audit.errors import JournalIntegrityStop, JournalUnavailableError
from ensu.audit.integrity import IntegrityMonitor
from ensu.audit.models import Event
from ensu.audit.records import CallRecord, EventRecord, RecordError, check_details, decode
from ensu.audit.store import JournalStore, leaves, size, utc
from ensu.audit.tags import EventTag
from ensu.audit.verify import Problem
from ensu.audit.witness import CheckpointWitness, WitnessAnswer, read_kept, witness_answer
from ensu.audit.writer import JournalWriter
from ensu.background import StopSignal
from ensu.config import Settings

logger = logging.getLogger("ensu.audit")

#: Tags that are security alerts (R-OPS-1), logged at warning level.
ALERTS = frozenset(
    {EventTag.DOCUMENTS_BLOB_INTEGRITY_FAILURE, EventTag.AUDIT_JOURNAL_INTEGRITY_BREACH}
)


async def record_event(
    *,
    session: AsyncSession,
    tag: EventTag,
    actor: str,
    details: Mapping[str, object] | None = None,
) -> Event:
    """Record one event within the caller's transaction; the relay journals it.

    Raises :class:`~ensu.audit.records.RecordError` for details holding a secret-named
    key or a token (R-TR-1): the caller's transaction then fails, as it should.
    """
    values = dict(details or {})
    check_details(values)
    event = Event(at=dt.datetime.now(dt.UTC), tag=str(tag), actor=actor, details=values)
    session.add(event)
    level = logging.WARNING if tag in ALERTS else logging.INFO
    logger.log(level, "%s by %s: %s", tag, actor, event.details)
    return event


async def events(*, session: AsyncSession, tag: EventTag, since: dt.datetime) -> list[Event]:
    """The events of ``tag`` recorded since ``since``, oldest first (the outbox keeps
    them after relaying): what another feature may read of what was recorded."""
    query = select(Event).where(Event.tag == str(tag), Event.at >= since).order_by(Event.id)
    return list((await session.scalars(query)).all())


async def calls_since(
    journal: JournalStore, position: int, *, limit: int = 2000
) -> tuple[list[tuple[int, CallRecord]], int]:
    """The call records of the journal from leaf ``position`` on (at most ``limit``
    leaves read), with their indices, and the position after the last leaf read (R-OPS-1:
    the detection follows the journal this way). Purged and event leaves are skipped."""
    async with journal.read() as connection:
        rows = await leaves(connection, position, limit)
    calls = []
    for row in rows:
        if row.kind != "call" or row.record is None:
            continue
        record = decode(row.record)
        if isinstance(record, CallRecord):
            calls.append((int(row.leaf_index), record))
    return calls, (int(rows[-1].leaf_index) + 1 if rows else position)


async def journal_size(journal: JournalStore) -> int:
    async with journal.read() as connection:
        return await size(connection)


def event_record(event: Event) -> EventRecord:
    """The journal record of an outbox row (details the schema refuses are replaced)."""
    try:
        return EventRecord(
            at=utc(event.at),
            tag=event.tag,
            actor=event.actor,
            details=event.details,
            event_id=event.id,
        )
    except RecordError as exc:
        logger.error("event %s: details not journaled: %s", event.id, exc)
        return EventRecord(
            at=utc(event.at),
            tag=event.tag,
            actor=event.actor[:128],
            details={"refused": str(exc)},
            event_id=event.id,
        )


class EventRelay:
    """Moves events from the outbox ``audit_events`` into the Merkle log."""

    def __init__(
        self,
        writer: JournalWriter,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.writer = writer
        self.sessionmaker = sessionmaker
        self.interval = interval
        self.batch = batch
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop_signal = StopSignal()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="journal-relay")

    async def close(self) -> None:
        """Stop the loop, then relay what is pending once more (the writer still runs):
        events of the last second do not wait in the outbox for the next start."""
        self._stop_signal.stop()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.relay()
        except Exception as exc:  # the outbox keeps them for the next start
            logger.warning("last relay before stopping failed: %r", exc)

    async def _loop(self) -> None:
        while True:
            try:
                await self.relay()
            except JournalUnavailableError:
                pass  # the writer logs it and recovers; the events wait in the outbox
            except Exception as exc:  # keep relaying: the outbox keeps the events
                logger.error("event relay failed: %r", exc)
            if await self._stop_signal.sleep(self.interval):
                return

    async def relay(self) -> int:
        """Append every pending event; how many were appended."""
        async with self._lock:  # one relay at a time in a process (the timer, a caller)
            total = 0
            while True:
                count = await self._relay_batch()
                total += count
                if count < self.batch:
                    return total

    async def _relay_batch(self) -> int:
        async with self.sessionmaker() as session:
            if session.get_bind().dialect.name == "postgresql":
                async with session.begin():  # rows locked: one relay per event, cluster-wide
                    records = await self._pending(session, lock=True)
                    indices = await self._append(records)
                    await self._note(session, records, indices)
                return len(records)
            # SQLite: a read snapshot cannot become a write after other writes; two steps.
            async with session.begin():
                records = await self._pending(session, lock=False)
            indices = await self._append(records)
            async with session.begin():
                await self._note(session, records, indices)
            return len(records)

    async def _pending(self, session: AsyncSession, *, lock: bool) -> list[EventRecord]:
        query = (
            select(Event).where(Event.journal_index.is_(None)).order_by(Event.id).limit(self.batch)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        return [event_record(event) for event in (await session.scalars(query)).all()]

    async def _append(self, records: Sequence[EventRecord]) -> list[int]:
        return list(await asyncio.gather(*(self.writer.append(r) for r in records)))

    async def _note(
        self, session: AsyncSession, records: Sequence[EventRecord], indices: list[int]
    ) -> None:
        if not records:
            return
        # One statement executed for all the rows (executemany), not one per event: a
        # burst of token issuances left thousands to note, seconds of CPU.
        table = Event.__table__
        assert isinstance(table, Table)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("event"), table.c.journal_index.is_(None))
            .values(journal_index=bindparam("index")),
            [
                {"event": record.event_id, "index": index}
                for record, index in zip(records, indices, strict=True)
            ],
        )


class Journal:
    """The journal as the app runs it: writer, integrity monitor, event relay.

    - ``await journal.append(record)``: a :class:`CallRecord` (or event record), durable
      on return; raises :class:`JournalUnavailableError` (503 930002) if the store fails.
    - ``journal.ensure_serving()``: raises :class:`JournalIntegrityStop` while an
      integrity breach is open, :class:`JournalUnavailableError` while the store fails;
      both are 503 930002. ``journal.stopped`` is the integrity-stop flag alone.
    """

    def __init__(
        self,
        *,
        store: JournalStore,
        writer: JournalWriter,
        monitor: IntegrityMonitor,
        relay: EventRelay | None,
    ) -> None:
        self.store = store
        self.writer = writer
        self.monitor = monitor
        self.relay = relay
        #: Refusals the writer could not take (:meth:`enqueue_refusal`): counted, logged.
        self.unjournaled = 0
        self._last_unjournaled_log = 0.0

    @classmethod
    async def open(
        cls,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        store: JournalStore | None = None,
        monitor_interval: float = 10.0,
        relay_interval: float = 1.0,
        checkpoint_interval: float = 10.0,
    ) -> Journal:
        """Start the journal of ``settings`` (``sessionmaker``: the main database, for
        the events' outbox; without it no relay runs)."""
        journal_store = store or JournalStore.for_settings(settings, bounded=True)
        signer = keys.load_or_create_signer(settings)
        witness = CheckpointWitness.for_settings(settings, journal_store, signer.verifier)
        writer = JournalWriter(
            journal_store, signer, checkpoint_interval=checkpoint_interval, witness=witness
        )
        await writer.start()

        async def on_breach(problem: Problem) -> None:
            if sessionmaker is not None:
                await _record_breach(sessionmaker, problem)

        path = witness.path
        monitor = IntegrityMonitor(
            journal_store,
            signer.verifier,
            interval=monitor_interval,
            on_breach=on_breach,
            kept=lambda: read_kept(path),
            exchange_days=settings.journal_retention_days,
        )
        await monitor.start()
        relay = None
        if sessionmaker is not None:
            relay = EventRelay(writer, sessionmaker, interval=relay_interval)
            await relay.start()
        return cls(store=journal_store, writer=writer, monitor=monitor, relay=relay)

    @property
    def stopped(self) -> bool:
        """The integrity stop (R-TR-2): no data may be served while it is set."""
        return self.monitor.stopped

    def ensure_serving(self) -> None:
        """Raise the 503 930002 error when data must not be served now (R-TR-2)."""
        if self.monitor.stopped:
            raise JournalIntegrityStop(self.monitor.problem)
        if not self.writer.available:
            raise JournalUnavailableError("the journal store is unavailable")

    async def append(self, record: CallRecord | EventRecord) -> int:
        return await self.writer.append(record)

    async def witness(self, *, since: int | None = None) -> WitnessAnswer | None:
        """The latest signed checkpoint and, from ``since``, its consistency proof: what
        a consumer needs to witness the journal (R-TR-2, :mod:`ensu.audit.witness`)."""
        return await witness_answer(self.store, self.monitor.verifier, since=since)

    def enqueue(self, record: CallRecord | EventRecord) -> bool:
        """Journal ``record`` without waiting for its commit (see the writer)."""
        return self.writer.enqueue(record)

    def enqueue_refusal(self, record: CallRecord) -> bool:
        """Journal a refusal that carries no data (integrity stop, overload) without
        waiting for its commit, even while no data is served (R-TR-1: every call leaves
        a trace). When the writer cannot take it (its store is down), the refusal is
        counted in :attr:`unjournaled` and logged at warning level, a line a second at
        most with the count so far: the trace is then the log's."""
        if self.writer.enqueue(record):
            return True
        self.unjournaled += 1
        moment = record.at.timestamp()
        if moment - self._last_unjournaled_log >= 1.0:
            self._last_unjournaled_log = moment
            logger.warning(
                "journal unavailable: refusal not journaled (%s %s, %s, correlation id %s);"
                " %d so far",
                record.method,
                record.route,
                record.reason,
                record.correlation_id,
                self.unjournaled,
            )
        return False

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()
        await self.monitor.close()
        await self.writer.close()
        await self.store.dispose()


async def _record_breach(sessionmaker: async_sessionmaker[AsyncSession], problem: Problem) -> None:
    try:
        async with sessionmaker() as session, session.begin():
            await record_event(
                session=session,
                tag=EventTag.AUDIT_JOURNAL_INTEGRITY_BREACH,
                actor="system:integrity-monitor",
                details={"code": problem.code, "index": problem.index, "problem": problem.message},
            )
    except Exception as exc:  # the alarm is stored in the journal store anyway
        logger.error("could not record the breach event: %r", exc)
