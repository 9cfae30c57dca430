"""The journal's entry points: ``record_event`` (outbox, then relayed into the same
Merkle log as the call records) and the :class:`Journal` the app runs (R-TR-1, R-TR-2)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import retention, store
from ensu.audit.errors import JournalIntegrityStop, JournalUnavailableError
from ensu.audit.models import Event
from ensu.audit.records import EventRecord, RecordError, decode
from ensu.audit.service import Journal, record_event
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.audit.verify import Problem, verify
from ensu.config import Settings
from ensu.errors import JournalUnavailable
from tests.unit.audit.conftest import call

pytestmark = pytest.mark.anyio


async def _open(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Journal:
    return await Journal.open(
        settings=settings,
        sessionmaker=sessionmaker,
        monitor_interval=3600,
        relay_interval=3600,
        checkpoint_interval=0,
    )


async def test_events_are_recorded_in_the_callers_transaction_then_journaled(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        await record_event(
            session=session,
            tag=EventTag.CONSUMERS_TELESERVICE_SUSPENDED,
            actor="cli:ops",
            details={"id_teleservice": "TS-A", "reason": "homologation échue"},
        )
    async with sessionmaker() as session:
        with pytest.raises(RecordError):
            await record_event(
                session=session,
                tag=EventTag.OAUTH_TOKEN_ISSUED,
                actor="client:x",
                details={"client_secret": "s3cr3t"},
            )
    journal = await _open(settings, sessionmaker)
    try:
        assert journal.relay is not None
        await journal.relay.relay()  # (its timer may have relayed the event already)
        assert await journal.relay.relay() == 0
        index = await journal.append(call(0))
        await journal.writer.checkpoint()
        async with journal.store.read() as connection:
            rows = await store.leaves(connection, 0, 10)
        result = await verify(journal.store, journal.writer.signer.verifier)
    finally:
        await journal.close()
    assert index == 1
    assert [row.kind for row in rows] == ["event", "call"]
    event = decode(rows[0].record)
    assert isinstance(event, EventRecord)
    assert (event.tag, event.actor, event.id_teleservice) == (
        "consumers:teleservice:suspended",
        "cli:ops",
        "TS-A",
    )
    assert rows[0].id_teleservice == "TS-A"
    async with sessionmaker() as session:
        noted = (await session.scalars(select(Event.journal_index))).all()
    assert noted == [0]
    assert event.event_id is not None
    assert result.ok, result.problem


async def test_the_journal_tells_the_gateway_when_not_to_serve(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """R-TR-2: 503 930002 while integrity is stopped or the store unavailable."""
    journal = await _open(settings, sessionmaker)
    try:
        journal.ensure_serving()
        assert not journal.stopped
        await journal.monitor._breach(Problem("gap", "test breach", 3))
        assert journal.stopped
        with pytest.raises(JournalIntegrityStop) as stopped:
            journal.ensure_serving()
        assert (stopped.value.status, stopped.value.code) == (503, "930002")
        await journal.append(call(1))  # the refused call is still journaled
        assert journal.relay is not None
        await journal.relay.relay()  # the breach event, for the alert circuit (R-OPS-1)
    finally:
        await journal.close()
    with pytest.raises(JournalUnavailable):  # closed, and stopped: 503 930002 either way
        journal.ensure_serving()
    with pytest.raises(JournalUnavailableError):
        await journal.append(call(2))
    async with sessionmaker() as session:
        events = (await session.execute(select(Event.tag, Event.journal_index))).all()
    assert [tuple(row) for row in events] == [(str(EventTag.AUDIT_JOURNAL_INTEGRITY_BREACH), 1)]


async def test_journaled_outbox_rows_are_deleted_after_their_retention(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = dt.datetime.now(dt.UTC)
    async with sessionmaker() as session, session.begin():
        for tag, days, journaled in [
            ("oauth:token:issued", 400, 1),
            ("oauth:token:issued", 400, None),  # not journaled yet: kept
            ("consumers:teleservice:created", 400, 2),
            ("consumers:teleservice:created", 7 * 366, 3),
        ]:
            session.add(
                Event(
                    at=now - dt.timedelta(days=days),
                    tag=tag,
                    actor="x",
                    details={},
                    journal_index=journaled,
                )
            )
    async with sessionmaker() as session, session.begin():
        assert (
            await retention.purge_outbox(session=session, now=now, exchange_days=365, dry_run=True)
            == 2
        )
        assert await retention.purge_outbox(session=session, now=now, exchange_days=365) == 2
    async with sessionmaker() as session:
        left = (await session.scalars(select(Event.journal_index).order_by(Event.id))).all()
    assert left == [None, 2]


async def test_the_default_journal_store_follows_the_settings(settings: Settings) -> None:
    journal = JournalStore.for_settings(settings)
    try:
        await journal.ensure_schema()
        if settings.is_sqlite:
            assert (settings.var_dir / "journal.db").exists()
        else:
            assert journal.url == settings.database_url
    finally:
        await journal.dispose()


async def test_a_stopping_journal_relays_its_last_events_and_signs_its_last_records(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Issue 5 (scale-out review): an instance that stops leaves neither events waiting
    in the outbox nor records outside a signed checkpoint."""
    journal = await Journal.open(
        settings=settings,
        sessionmaker=sessionmaker,
        monitor_interval=3600,
        relay_interval=3600,  # the timer never relays during the test
        checkpoint_interval=3600,  # nor does the ticker sign
    )
    try:
        await journal.writer.checkpoint()
        for number in range(3):
            await journal.append(call(number))
        async with sessionmaker() as session, session.begin():
            await record_event(
                session=session,
                tag=EventTag.CONSUMERS_TELESERVICE_SUSPENDED,
                actor="cli:ops",
                details={"id_teleservice": "TS-A"},
            )
    finally:
        await journal.close()
    async with sessionmaker() as session:
        (event,) = (await session.scalars(select(Event))).all()
    assert event.journal_index is not None
    reopened = JournalStore.for_settings(settings)
    try:
        async with reopened.read() as connection:
            size = await store.size(connection)
            latest = await store.latest_checkpoint(connection)
    finally:
        await reopened.dispose()
    assert size == 4
    assert latest is not None
    assert latest.tree_size == size
