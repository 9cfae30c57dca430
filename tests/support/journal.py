"""Reading the journal back in tests: every record, decoded, in index order (R-TR-1)."""

from __future__ import annotations

from ensu.audit import store
from ensu.audit.records import EventRecord, Record, decode
from ensu.audit.store import JournalStore
from ensu.config import Settings


async def journal_records(settings: Settings) -> list[Record]:
    """Every record of ``settings``' journal, in index order (a store of its own)."""
    journal = JournalStore.for_settings(settings)
    records: list[Record] = []
    position = 0
    try:
        async with journal.read() as connection:
            while rows := await store.leaves(connection, position, store.READ_CHUNK):
                position = int(rows[-1].leaf_index) + 1
                records += [decode(row.record) for row in rows]
    finally:
        await journal.dispose()
    return records


async def journaled_events(settings: Settings, tag: str) -> list[EventRecord]:
    """The event records of ``tag`` in ``settings``' journal."""
    return [
        record
        for record in await journal_records(settings)
        if isinstance(record, EventRecord) and record.tag == tag
    ]
