"""Resiliation (R-SQ-5, CGU §13, §14): two months' notice, the exchange maintained
meanwhile and ended by the clock on its date, not before; an immediate cut only for a
security reason; the end of the legal basis; each notified in writing."""

from __future__ import annotations

import datetime as dt

import pytest

from ensu.accounts.principal import Actor, ActorKind
from ensu.compliance import service as compliance
from ensu.compliance.models import Party
from tests.support.certs import SIRET
from tests.unit.compliance.conftest import OTHER_SIRET, RT, TECH, World, at

pytestmark = pytest.mark.anyio

D = dt.date
T0 = D(2026, 3, 2)  # two months later: 2026-05-02, 61 days
OPERATOR = Actor.system("cli:test")


async def _request(world: World, ts: str, **fields: object) -> compliance.ResiliationView:
    async with world.sessionmaker() as session, session.begin():
        return await compliance.request_resiliation(
            session=session,
            id_teleservice=ts,
            actor=fields.pop("actor", OPERATOR),  # type: ignore[arg-type]
            now=at(T0),
            **fields,  # type: ignore[arg-type]
        )


async def test_59_days_notice_is_refused(world: World) -> None:
    ts = await world.teleservice("alpha")
    with pytest.raises(compliance.Refused, match="au plus tôt le 02/05/2026"):
        await _request(
            world,
            ts,
            party=Party.CONSUMER,
            reason="Fin du projet.",
            effective_on=T0 + dt.timedelta(days=59),
        )
    assert await world.status(ts) == "active"


async def test_two_months_notice_ends_the_exchange_on_its_date_and_not_before(
    world: World,
) -> None:
    ts = await world.teleservice("beta")
    view = await _request(
        world, ts, party=Party.CONSUMER, reason="Fin du projet.", effective_on=D(2026, 5, 2)
    )
    assert (view.effective_on, view.ended) == (D(2026, 5, 2), False)
    await world.run_due(T0)
    assert world.inbox.subjects(TECH) == [
        "Résiliation de l'échange au 02/05/2026 — Téléservice beta"
    ]
    for day in (D(2026, 3, 3), D(2026, 5, 1)):
        await world.run_due(day, 23)
        assert await world.status(ts) == "active"  # the exchange is maintained meanwhile
    await world.run_due(D(2026, 5, 2), 0)
    assert await world.status(ts) == "revoked"
    assert world.inbox.subjects(RT)[-1] == "Fin de l'échange — Téléservice beta"
    async with world.sessionmaker() as session:
        listed = await compliance.resiliations(session=session, organisation_siret=SIRET)
    assert [(r.id, r.ended) for r in listed] == [(view.id, True)]


async def test_the_default_date_is_two_months_ahead(world: World) -> None:
    ts = await world.teleservice("gamma")
    view = await _request(world, ts, party=Party.PRODUCER, reason="Décision de la DGFIP.")
    assert view.effective_on == D(2026, 5, 2)
    with pytest.raises(compliance.Refused, match="déjà en cours"):
        await _request(world, ts, party=Party.CONSUMER, reason="Encore.")


async def test_an_immediate_cut_needs_a_security_reason(world: World) -> None:
    ts = await world.teleservice("delta")
    with pytest.raises(compliance.Refused, match="motifs"):
        await _request(world, ts, party=Party.PRODUCER, reason="  ", security=True)
    view = await _request(
        world, ts, party=Party.PRODUCER, reason="Certificat compromis.", security=True
    )
    assert view.ended
    assert await world.status(ts) == "revoked"
    await world.run_due(T0)
    assert world.inbox.subjects(TECH) == ["Fin de l'échange — Téléservice delta"]


async def test_the_end_of_the_legal_basis_ends_the_exchange(world: World) -> None:
    ts = await world.teleservice("epsilon")
    async with world.sessionmaker() as session, session.begin():
        view = await compliance.end_of_legal_basis(
            session=session,
            id_teleservice=ts,
            ends_on=D(2026, 3, 20),
            reason="Abrogation de l'article fondant l'échange.",
            actor=OPERATOR,
            now=at(T0),
        )
    assert not view.ended
    await world.run_due(D(2026, 3, 19))
    assert await world.status(ts) == "active"
    await world.run_due(D(2026, 3, 20))
    assert await world.status(ts) == "revoked"


async def test_an_applicant_ends_only_its_own_exchange(world: World) -> None:
    ts = await world.teleservice("zeta")
    stranger = Actor(kind=ActorKind.APPLICANT, label="user:x", organisation_siret=OTHER_SIRET)
    with pytest.raises(compliance.Refused, match="seule l'organisation"):
        await _request(world, ts, party=Party.CONSUMER, reason="x", actor=stranger)
    owner = Actor(kind=ActorKind.APPLICANT, label="user:y", organisation_siret=SIRET)
    view = await _request(world, ts, party=Party.CONSUMER, reason="Fin.", actor=owner)
    assert view.party is Party.CONSUMER
