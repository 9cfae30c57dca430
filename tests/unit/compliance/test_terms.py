"""Versioned terms of use (R-SQ-6, CGU §14): the shipped v2023-11, a new version notified
to every consumer organisation, its acceptance recorded with its version, reminders."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from ensu.accounts.principal import Actor, ActorKind
from ensu.compliance import service as compliance
from ensu.compliance import terms
from ensu.compliance.models import TermsAcceptance
from ensu.config import Environment
from tests.support.certs import SIRET
from tests.unit.compliance.conftest import OTHER_SIRET, RT, TECH, World, at

pytestmark = pytest.mark.anyio

D = dt.date
REFERENCE = Path("/work/shared/reference")
OPERATOR = Actor.system("cli:test")


async def test_v2023_11_is_shipped_for_both_environments(world: World) -> None:
    async with world.sessionmaker() as session, session.begin():
        listed = await compliance.versions(session=session)
        prod = await terms.text_of(
            session=session, environment=Environment.PRODUCTION, version="v2023-11"
        )
    assert [(v.environment, v.version, v.effective_on) for v in listed] == [
        (Environment.SANDBOX, "v2023-11", D(2023, 11, 22)),
        (Environment.PRODUCTION, "v2023-11", D(2023, 11, 22)),
    ]
    assert "CGU PROD ENSU DOC v.2023-11" in prod
    assert "(14) jours ouvrés" in prod
    for environment, name in terms.BUILTIN_FILES.items():
        reference = REFERENCE / name
        if reference.exists():  # the shared reference, beside the checkout
            assert terms.builtin_text(environment) == reference.read_text(encoding="utf-8")
        sha = hashlib.sha256(terms.builtin_text(environment).encode()).hexdigest()
        assert sha in {v.sha256 for v in listed}


async def test_a_new_version_is_notified_accepted_and_reminded(world: World) -> None:
    await world.teleservice("alpha")
    await world.teleservice("beta", siret=OTHER_SIRET, tech="t2@autre.example.fr", rt=RT)
    await world.teleservice("bac", environment=Environment.SANDBOX, tech="bas@example.fr")
    async with world.sessionmaker() as session, session.begin():
        published = await compliance.publish_terms(
            session=session,
            environment=Environment.PRODUCTION,
            version="v2026-12",
            text="Conditions générales, version de décembre 2026.",
            effective_on=D(2027, 1, 1),
            actor=OPERATOR,
            now=at(D(2026, 12, 1)),
        )
    await world.run_due(D(2026, 12, 1))
    subject = "Nouvelle version des CGU de l'API ENSU Documents (v2026-12)"
    assert world.inbox.subjects(TECH) == [subject]
    assert world.inbox.subjects("t2@autre.example.fr") == [subject]
    assert world.inbox.subjects(RT) == [subject, subject]  # one per organisation
    assert world.inbox.subjects("bas@example.fr") == []  # the sandbox's terms did not change

    applicant = Actor(kind=ActorKind.APPLICANT, label="user:a", organisation_siret=SIRET)
    async with world.sessionmaker() as session, session.begin():
        status = await compliance.accept_terms(
            session=session,
            organisation_siret=SIRET,
            environment=Environment.PRODUCTION,
            version="v2026-12",
            actor=applicant,
            now=at(D(2026, 12, 15)),
        )
        with pytest.raises(compliance.Refused):
            await compliance.accept_terms(
                session=session,
                organisation_siret=OTHER_SIRET,
                environment=Environment.PRODUCTION,
                version="v2026-12",
                actor=applicant,
            )
    assert status.accepted_version == "v2026-12"
    async with world.sessionmaker() as session:
        rows = list(await session.scalars(select(TermsAcceptance)))
        mine = await compliance.terms_status(
            session=session, organisation_siret=SIRET, today=D(2027, 1, 2)
        )
        theirs = await compliance.terms_status(
            session=session, organisation_siret=OTHER_SIRET, today=D(2027, 1, 2)
        )
    assert [(r.organisation_siret, r.version, r.terms_version_id) for r in rows] == [
        (SIRET, "v2026-12", published.id)
    ]
    assert [(s.environment, s.in_force.version, s.up_to_date) for s in mine] == [
        (Environment.PRODUCTION, "v2026-12", True),
        (Environment.SANDBOX, "v2023-11", False),  # never recorded: the request will
    ]
    assert [(s.in_force.version, s.accepted_version, s.up_to_date) for s in theirs] == [
        ("v2026-12", None, False)
    ]

    before = len(world.inbox.messages)
    await world.run_due(D(2026, 12, 31))  # not in force yet: nobody reminded
    await world.run_due(D(2027, 1, 1))
    await world.run_due(D(2027, 1, 1), 22)
    reminder = "Rappel : CGU v2026-12 à accepter"
    assert world.inbox.subjects()[before:] == [reminder, reminder]
    assert {to for _s, recipients, _m in world.inbox.messages[before:] for to in recipients} == {
        "t2@autre.example.fr",
        RT,
    }
    await world.run_due(D(2027, 1, 30))
    assert len(world.inbox.messages) == before + 2
    await world.run_due(D(2027, 1, 31))  # 30 days later, again
    assert len(world.inbox.messages) == before + 4


async def test_a_version_applies_after_the_previous_one(world: World) -> None:
    async with world.sessionmaker() as session, session.begin():
        with pytest.raises(compliance.Refused, match="après"):
            await compliance.publish_terms(
                session=session,
                environment=Environment.SANDBOX,
                version="v2020-01",
                text="x",
                effective_on=D(2020, 1, 1),
                actor=OPERATOR,
            )
        with pytest.raises(compliance.Refused, match="existe déjà"):
            await compliance.publish_terms(
                session=session,
                environment=Environment.SANDBOX,
                version="v2023-11",
                text="x",
                effective_on=D(2030, 1, 1),
                actor=OPERATOR,
            )
