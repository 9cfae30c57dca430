"""Production changes announced ahead (R-SQ-4, CGU §9.3): 14 working days, 7 in an
emergency with its reason, French holidays counted; technical contacts told."""

from __future__ import annotations

import datetime as dt

import pytest

from ensu.accounts.principal import Actor
from ensu.compliance import service as compliance
from ensu.config import Environment
from tests.unit.compliance.conftest import RT, TECH, World, at

pytestmark = pytest.mark.anyio

D = dt.date
ANNOUNCED = D(2026, 4, 28)  # 14 working days later: 2026-05-21; 7: 2026-05-11
OPERATOR = Actor.system("cli:test")


async def _announce(world: World, effective: dt.date, emergency: str | None = None) -> object:
    async with world.sessionmaker() as session, session.begin():
        return await compliance.announce_change(
            session=session,
            title="Nouveau code document",
            description="Le code IR-2042 est ajouté au catalogue.",
            effective_on=effective,
            emergency_reason=emergency,
            actor=OPERATOR,
            now=at(ANNOUNCED, 10),
        )


async def test_fourteen_working_days_ahead(world: World) -> None:
    await world.teleservice("alpha")
    await world.teleservice("bac", environment=Environment.SANDBOX, tech="bas@example.fr")
    with pytest.raises(compliance.Refused, match="au plus tôt le 21/05/2026"):
        await _announce(world, D(2026, 5, 20))
    await _announce(world, D(2026, 5, 21))
    await world.run_due(ANNOUNCED, 11)
    subject = "Évolution de l'API ENSU Documents le 21/05/2026 : Nouveau code document"
    assert world.inbox.subjects(TECH) == [subject]
    assert world.inbox.subjects(RT) == []  # the technical contacts (CGU §9.3)
    assert world.inbox.subjects("bas@example.fr") == []  # a production change
    async with world.sessionmaker() as session:
        ahead = await compliance.upcoming_deadlines(session=session, today=ANNOUNCED)
    assert [(d.on, d.kind) for d in ahead] == [(D(2026, 5, 21), "change")]


async def test_seven_working_days_in_an_emergency_with_its_reason(world: World) -> None:
    with pytest.raises(compliance.Refused, match="11/05/2026"):
        await _announce(world, D(2026, 5, 8), emergency="Faille de sécurité corrigée.")
    with pytest.raises(compliance.Refused, match="raison"):
        await _announce(world, D(2026, 5, 11), emergency="  ")
    await _announce(world, D(2026, 5, 11), emergency="Faille de sécurité corrigée.")
