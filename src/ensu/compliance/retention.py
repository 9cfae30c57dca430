"""Retention of the data kept about an exchange (R-TR-4, CGU §6.8).

The data of a request and of its follow-up are kept **6 years after the end of
delivery** (the resiliation, or the end of the habilitation), then purged by the clock's
``retention`` job. Each feature that keeps such data registers a *purger*
(:func:`register_purger`): given the cut-off date, it deletes what ended on or before it
and returns the SHA-256 of each record it removed. The job journals those hashes with
the counts (``compliance:retention:purged``): the journal keeps the proof that a record
existed and what it held, not its content.

Compliance registers its own purger below (commitments, risks, suspensions, resiliation
and notices of a téléservice whose exchange ended); the habilitations feature joins with
``register_purger("habilitations", purge_habilitations)`` at import.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from ensu import clock
from ensu.accounts.principal import Actor
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.compliance.calendar import add_months
from ensu.compliance.models import (
    ClockSuspension,
    CriticalRisk,
    Notice,
    Resiliation,
    SecurityCommitment,
)

#: CGU §6.8: "conservées pendant six (6) ans à compter de l'arrêt de la délivrance".
RETENTION_YEARS = 6


@dataclass
class Purged:
    """What one purger removed: the SHA-256 of each record (hex), by table."""

    digests: dict[str, list[str]] = field(default_factory=dict)

    def add(self, table: str, digest: str) -> None:
        self.digests.setdefault(table, []).append(digest)

    @property
    def count(self) -> int:
        return sum(len(values) for values in self.digests.values())


class Purger(Protocol):
    def __call__(self, *, session: AsyncSession, cutoff: dt.date) -> Awaitable[Purged]: ...


_PURGERS: dict[str, Purger] = {}


def register_purger(name: str, purger: Purger) -> None:
    """Join the retention job: ``purger(session=..., cutoff=...)`` removes the data whose
    delivery ended on or before ``cutoff`` (idempotent per name)."""
    _PURGERS[name] = purger


def purgers() -> dict[str, Purger]:
    return dict(_PURGERS)


def cutoff_for(today: dt.date) -> dt.date:
    """The last end of delivery whose data may be purged on ``today``."""
    return add_months(today, -12 * RETENTION_YEARS)


def record_digest(row: DeclarativeBase) -> str:
    """SHA-256 of a row's columns, as canonical JSON (sorted keys)."""
    values = {column.key: getattr(row, column.key) for column in row.__table__.columns}
    data = orjson.dumps(values, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()


async def run(
    *, session: AsyncSession, today: dt.date, actor: Actor, now: dt.datetime | None = None
) -> dict[str, int]:
    """Every registered purger, then one journal event with the hashes of what went."""
    cutoff = cutoff_for(today)
    counts: dict[str, int] = {}
    for name, purger in sorted(_PURGERS.items()):
        purged = await purger(session=session, cutoff=cutoff)
        counts[name] = purged.count
        if purged.count:
            await audit.record_event(
                session=session,
                tag=EventTag.COMPLIANCE_RETENTION_PURGED,
                actor=actor.label,
                details={
                    "purger": name,
                    "cutoff": cutoff.isoformat(),
                    "at": (now or clock.now()).isoformat(),
                    "sha256": purged.digests,
                },
            )
    return counts


async def _delete(
    session: AsyncSession, purged: Purged, table: str, rows: Iterable[DeclarativeBase]
) -> None:
    for row in rows:
        purged.add(table, record_digest(row))
        await session.delete(row)


async def purge_compliance(*, session: AsyncSession, cutoff: dt.date) -> Purged:
    """Compliance's own data of the exchanges that ended on or before ``cutoff``."""
    purged = Purged()
    limit = dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time(), clock.PARIS)
    ended = list(
        await session.scalars(
            select(Resiliation).where(
                Resiliation.ended_at.is_not(None), Resiliation.ended_at < limit
            )
        )
    )
    for resiliation in ended:
        key = resiliation.id_teleservice
        for model in (SecurityCommitment, CriticalRisk, ClockSuspension, Notice):
            column = model.__table__.c.id_teleservice
            rows = await session.scalars(select(model).where(column == key))
            await _delete(session, purged, model.__tablename__, list(rows))
        await _delete(session, purged, Resiliation.__tablename__, [resiliation])
    await session.flush()
    return purged


register_purger("compliance", purge_compliance)
