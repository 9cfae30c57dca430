"""Retention (R-TR-4, CGU §6.8): the clock purges the data of an exchange 6 years after
the end of delivery, through purgers other features register; the journal keeps the
hashes of what went."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.accounts.principal import Actor
from ensu.audit.models import Event
from ensu.compliance import retention
from ensu.compliance import service as compliance
from ensu.compliance.models import CommitmentKind, Notice, Party, Resiliation, SecurityCommitment
from tests.unit.compliance.conftest import World, at

pytestmark = pytest.mark.anyio

D = dt.date
OPERATOR = Actor.system("cli:test")


async def _count(
    world: World, model: type[Notice] | type[SecurityCommitment] | type[Resiliation]
) -> int:
    async with world.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_purged_six_years_after_the_end_of_delivery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cutoffs: list[dt.date] = []

    async def habilitations(*, session: AsyncSession, cutoff: dt.date) -> retention.Purged:
        cutoffs.append(cutoff)
        purged = retention.Purged()
        purged.add("habilitation_requests", "ab" * 32)
        return purged

    monkeypatch.setitem(retention._PURGERS, "habilitations", habilitations)
    ts = await world.teleservice("alpha")
    kept = await world.teleservice("beta")
    async with world.sessionmaker() as session, session.begin():
        for target in (ts, kept):
            await compliance.record_commitment(
                session=session,
                id_teleservice=target,
                kind=CommitmentKind.QUESTIONNAIRE,
                reference_date=D(2026, 1, 10),
                actor=OPERATOR,
                now=at(D(2026, 3, 2)),
            )
        await compliance.request_resiliation(
            session=session,
            id_teleservice=ts,
            party=Party.CONSUMER,
            reason="Fin du projet.",
            actor=OPERATOR,
            now=at(D(2026, 3, 2)),
        )
    await world.run_due(D(2026, 5, 2))  # the exchange ends
    assert await world.status(ts) == "revoked"
    notices_before = await _count(world, Notice)
    await world.run_due(D(2032, 5, 1))
    assert await _count(world, Resiliation) == 1  # not yet: 6 years on 2032-05-02
    await world.run_due(D(2032, 5, 2))
    assert await _count(world, Resiliation) == 0
    assert await _count(world, SecurityCommitment) == 1  # the other téléservice's stays
    assert await _count(world, Notice) < notices_before
    async with world.sessionmaker() as session:
        left = set(await session.scalars(select(Notice.id_teleservice)))
        events = list(
            await session.scalars(
                select(Event.details).where(Event.tag == "compliance:retention:purged")
            )
        )
    assert ts not in left
    by_purger: dict[str, dict[str, Any]] = {str(e["purger"]): e for e in events}
    digests: dict[str, list[str]] = by_purger["compliance"]["sha256"]
    assert set(digests) >= {
        "compliance_commitments",
        "compliance_resiliations",
        "compliance_notices",
    }
    assert all(len(value) == 64 for values in digests.values() for value in values)
    assert by_purger["habilitations"]["sha256"] == {"habilitation_requests": ["ab" * 32]}
    assert cutoffs[-1] == D(2026, 5, 2)
