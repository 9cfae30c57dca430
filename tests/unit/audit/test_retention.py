"""Retention (R-TR-4): expired records are emptied, their leaf hashes kept, and the
journal still verifies; DataPass events are kept six years, exchange data a year."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import operator

import pytest

from ensu.audit import retention, store
from ensu.audit.note import NoteSigner
from ensu.audit.records import CallRecord, EventRecord, Retention
from ensu.audit.verify import verify
from ensu.audit.writer import JournalWriter
from tests.unit.audit.conftest import call

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _event(tag: str, days_ago: int) -> EventRecord:
    return EventRecord(
        at=NOW - dt.timedelta(days=days_ago),
        tag=tag,
        actor="cli:ops",
        details={"id_teleservice": "TS-A"},
    )


async def _journal(writer: JournalWriter) -> None:
    """Six years of a journal, in time order: each record signed by a checkpoint a
    second after it, and a last call and checkpoint now (what justifies the purge)."""
    records: list[CallRecord | EventRecord] = [
        _event("consumers:teleservice:created", 6 * 365 + 5),  # DataPass: expired
        _event("consumers:teleservice:revoked", 5 * 365),  # DataPass: kept
        call(0, at=NOW - dt.timedelta(days=400)),  # expired exchange
        _event("oauth:token:issued", 400),  # exchange data: expired
        _event("consumers:teleservice:suspended", 400),  # DataPass: kept
        call(1, at=NOW - dt.timedelta(days=366)),  # expired exchange
        call(2, at=NOW - dt.timedelta(days=364)),  # kept
        call(3, at=NOW),  # kept
    ]
    for record in records:
        writer.clock = functools.partial(operator.add, record.at, dt.timedelta(seconds=1))
        await writer.append(record)
        await writer.checkpoint()
    writer.clock = lambda: NOW + dt.timedelta(seconds=1)


async def test_purge_empties_expired_records_and_the_journal_still_verifies(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    await _journal(writer)
    dry = await retention.purge(writer.store, now=NOW, exchange_days=365, dry_run=True)
    assert dry.purged == {Retention.EXCHANGE: 3, Retention.DATAPASS: 1}
    async with writer.store.read() as connection:
        before = await store.leaf_hashes(connection, 0, 8)
    report = await retention.purge(writer.store, now=NOW, exchange_days=365)
    assert report.purged == dry.purged
    assert report.total == 4
    async with writer.store.read() as connection:
        rows = await store.leaves(connection, 0, 10)
        after = await store.leaf_hashes(connection, 0, 8)
    purged = [row.record is None for row in rows]
    assert purged == [True, False, True, True, False, True, False, False]
    assert after == before
    assert all(row.purged_at is not None for row in rows if row.record is None)
    await writer.append(call(4, at=NOW))
    await writer.checkpoint()
    result = await verify(writer.store, signer.verifier)
    assert result.ok, result.problem
    assert result.purged == 4
    again = await retention.purge(writer.store, now=NOW, exchange_days=365)
    assert again.total == 0


async def test_a_purged_leaf_keeps_its_place_even_when_purges_and_appends_race(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    await _journal(writer)
    await asyncio.gather(
        retention.purge(writer.store, now=NOW, exchange_days=365),
        *(writer.append(call(n, at=NOW)) for n in range(10, 60)),
    )
    await writer.checkpoint()
    result = await verify(writer.store, signer.verifier)
    assert result.ok, result.problem
    assert (result.size, result.purged) == (58, 4)


def test_six_years_are_calendar_years() -> None:
    leap = dt.datetime(2028, 2, 29, tzinfo=dt.UTC)
    assert retention.years_before(leap, 6) == dt.datetime(2022, 2, 28, tzinfo=dt.UTC)
    limits = retention.cutoffs(now=NOW, exchange_days=30)
    assert limits[Retention.EXCHANGE] == NOW - dt.timedelta(days=30)
    assert limits[Retention.DATAPASS] == dt.datetime(2020, 11, 27, 12, 0, tzinfo=dt.UTC)
