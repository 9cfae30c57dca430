"""Retention of the journal (R-TR-4).

Exchange data (call records, and the events of token issuance and client
authentication) is kept ``settings.journal_retention_days`` (365 by default); the other
events (DataPass, habilitations, consumers, keys) are kept six years (CGU §6.8: six years
after the end of delivery — counted here from the event, the habilitation feature purges
its own data when the delivery ends).

A purge *empties* the record of an expired leaf (``record`` set to ``NULL``,
``purged_at`` set) and keeps its leaf hash: the tree, its checkpoints and every proof
stay verifiable (verification takes a purged leaf at its stored hash). Outbox rows of
``audit_events`` already journaled are deleted after the same periods.

Once emptied, a record's own time is gone with it (the ``at`` column is an unsigned copy),
so verification (R-TR-2, :mod:`ensu.audit.verify`) accepts a purged leaf only when its
retention had passed at the time of the latest signed checkpoint, counted from the time
of the *first checkpoint that covers it* (signed, and no earlier than the record). The
purge applies the same rule, exactly: it empties a leaf only if its own time is past the
cutoff *and* the checkpoint that first covers it was signed before the cutoff of the
latest checkpoint's time (:func:`purge_bound`). A leaf appended long after its call (a
crash, a server down for days) therefore waits for the next purge.

On PostgreSQL the journal tables refuse UPDATE (migration triggers) except through the
sanctioned path: the ``SECURITY DEFINER`` function ``ensu_journal_purge(retention,
cutoff, now)``, which sets the transaction-local setting ``ensu.journal_purge`` that the
trigger requires, and an UPDATE of *purge shape* only (record to NULL, ``purged_at`` set,
every other column unchanged). Even a session that forges the setting can therefore only
erase expired content, never change a hash or an index; and with a database role that
has no UPDATE privilege on the journal, only the function can do it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, not_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.expression import ColumnElement

from ensu.audit.models import Event, JournalCheckpoint, JournalLeaf
from ensu.audit.records import EXCHANGE_TAG_PREFIXES, Retention
from ensu.audit.store import JournalStore, utc

DATAPASS_RETENTION_YEARS = 6
#: The default of ``ENSU_JOURNAL_RETENTION_DAYS`` (``Settings.journal_retention_days``).
DEFAULT_EXCHANGE_DAYS = 365


def years_before(moment: dt.datetime, years: int) -> dt.datetime:
    """``moment`` minus whole calendar years (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def cutoffs(*, now: dt.datetime, exchange_days: int) -> dict[Retention, dt.datetime]:
    """Records of each class older than its cutoff are expired."""
    return {
        Retention.EXCHANGE: now - dt.timedelta(days=exchange_days),
        Retention.DATAPASS: years_before(now, DATAPASS_RETENTION_YEARS),
    }


@dataclass(frozen=True, slots=True)
class PurgeReport:
    purged: dict[Retention, int]
    outbox_deleted: int = 0

    @property
    def total(self) -> int:
        return sum(self.purged.values())


def _expired(retention: Retention, cutoff: dt.datetime, below: int) -> list[ColumnElement[bool]]:
    return [
        JournalLeaf.retention == str(retention),
        JournalLeaf.at < cutoff,
        JournalLeaf.record.is_not(None),
        JournalLeaf.leaf_index < below,
    ]


async def purge_bound(connection: AsyncConnection, cutoff: dt.datetime) -> int:
    """The leaves below this index are covered by a checkpoint signed at ``cutoff`` or
    before: the first checkpoint signed after ``cutoff``, and every leaf it is the first
    to cover, are excluded (R-TR-2, see the module docstring)."""
    after = await connection.scalar(
        select(func.min(JournalCheckpoint.tree_size)).where(JournalCheckpoint.at > cutoff)
    )
    query = select(func.max(JournalCheckpoint.tree_size))
    if after is not None:
        query = query.where(JournalCheckpoint.tree_size < after)
    below = await connection.scalar(query)
    return 0 if below is None else int(below)


async def purge(
    journal: JournalStore, *, now: dt.datetime, exchange_days: int, dry_run: bool = False
) -> PurgeReport:
    """Empty the records past their retention; their leaf hashes stay (R-TR-4). Only
    leaves whose purge the latest signed checkpoint justifies (module docstring)."""
    purged: dict[Retention, int] = {}
    async with journal.write() as connection:
        latest = await connection.scalar(select(func.max(JournalCheckpoint.at)))
        horizon = now if latest is None else min(now, utc(latest))
        justified = cutoffs(now=horizon, exchange_days=exchange_days)
        for retention, cutoff in cutoffs(now=now, exchange_days=exchange_days).items():
            below = await purge_bound(connection, justified[retention])
            if dry_run:
                query = select(func.count()).where(*_expired(retention, cutoff, below))
                purged[retention] = int(await connection.scalar(query) or 0)
            elif connection.dialect.name == "postgresql":
                count = await connection.scalar(
                    text("SELECT ensu_journal_purge(:retention, :cutoff, :now, :below)"),
                    {"retention": str(retention), "cutoff": cutoff, "now": now, "below": below},
                )
                purged[retention] = int(count or 0)
            else:
                result = await connection.execute(
                    update(JournalLeaf)
                    .where(*_expired(retention, cutoff, below))
                    .values(record=None, purged_at=now)
                )
                purged[retention] = int(result.rowcount)
    return PurgeReport(purged=purged)


async def purge_outbox(
    *, session: AsyncSession, now: dt.datetime, exchange_days: int, dry_run: bool = False
) -> int:
    """Delete the outbox rows already journaled and past their retention."""
    limits = cutoffs(now=now, exchange_days=exchange_days)
    exchange = or_(*(Event.tag.startswith(prefix) for prefix in EXCHANGE_TAG_PREFIXES))
    expired = and_(
        Event.journal_index.is_not(None),
        or_(
            and_(exchange, Event.at < limits[Retention.EXCHANGE]),
            and_(not_(exchange), Event.at < limits[Retention.DATAPASS]),
        ),
    )
    if dry_run:
        return int(
            await session.scalar(select(func.count()).select_from(Event).where(expired)) or 0
        )
    result = await session.execute(delete(Event).where(expired))
    return int(result.rowcount)  # type: ignore[attr-defined]
