"""Consumers: organisations and téléservices as the gateway and the token endpoint read
them (R-GW-1 to R-GW-5, R-Q-1, R-CON-1), their validation and their status workflow."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.clock import legal_date
from ensu.config import Environment
from ensu.consumers import quota as quotas
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod, ContactRole, Teleservice, TeleserviceStatus
from ensu.consumers.quota import QuotaGrant, QuotaJustification
from ensu.consumers.schemas import CertificateRef, Contact, CreatedTeleservice
from tests.support.certs import SIRET, create_client, make_certificate
from tests.support.quota import TEST_GRANT

pytestmark = pytest.mark.anyio
CERT = make_certificate("consumer")


async def _create(session: AsyncSession, **changes: Any) -> CreatedTeleservice:
    await consumers.ensure_organisation(session=session, siret=SIRET, name="Org", actor="t")
    arguments: dict[str, Any] = {
        "session": session,
        "organisation_siret": SIRET,
        "name": "Service",
        "environment": Environment.SANDBOX,
        "certificates": [CERT.ref],
        "families": ["declaratives"],
        "period_start": dt.date(2020, 1, 1),
        "period_end": dt.date(2024, 12, 31),
        "actor": "t",
    }
    arguments.update(changes)
    return await consumers.create_teleservice(**arguments)


async def _tags(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(Event.tag).order_by(Event.id)))


async def test_create_with_defaults(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Generated identifiers, loopback allowlist, quota 50 in the sandbox (R-Q-1)."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session)
    assert created.client_secret is None
    assert created.id_teleservice.startswith("TS-")
    assert len(created.id_teleservice) == 23
    assert len(created.client_id) == 26
    async with sessionmaker() as session:
        view = await consumers.get_by_client_id(session=session, client_id=created.client_id)
        tags = await _tags(session)
    assert view is not None
    assert view.id_teleservice == created.id_teleservice
    assert view.organisation_siret == SIRET
    assert view.status is TeleserviceStatus.ACTIVE
    assert view.quota_per_minute == 50
    assert view.networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert view.thumbprints == {CERT.thumbprint}
    assert view.auth_method is AuthMethod.TLS_CLIENT_AUTH
    assert view.valid_from == legal_date(dt.datetime.now(dt.UTC))
    assert "DGFIP" in view.mention_information
    assert "1er janvier 2020 au 31 décembre 2024" in view.mention_information
    assert tags == [
        str(EventTag.CONSUMERS_ORGANISATION_CREATED),
        str(EventTag.CONSUMERS_TELESERVICE_CREATED),
    ]


async def test_production_quota_defaults_to_500(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """R-Q-1: 500 calls per minute in production unless decided otherwise (R-Q-2)."""
    async with sessionmaker() as session, session.begin():
        production = await _create(session, environment=Environment.PRODUCTION)
        chosen = await _create(
            session, name="Other", quota_per_minute=1200, quota_decision=TEST_GRANT
        )
        a = await consumers.get_by_client_id(session=session, client_id=production.client_id)
        b = await consumers.get_by_client_id(session=session, client_id=chosen.client_id)
    assert a is not None
    assert a.quota_per_minute == 500
    assert b is not None
    assert b.quota_per_minute == 1200


@pytest.mark.parametrize(
    "decision",
    [
        None,
        QuotaGrant(decided_by="  ", justification=TEST_GRANT.justification),
        QuotaGrant(decided_by="DGFIP", justification=QuotaJustification(files_count=3)),
    ],
    ids=["no-decision", "no-decider", "partial-justification"],
)
async def test_a_quota_above_the_default_needs_a_recorded_decision(
    sessionmaker: async_sessionmaker[AsyncSession], decision: QuotaGrant | None
) -> None:
    """R-Q-2 in the service, whoever calls it: above the default (50 in the sandbox),
    no téléservice without a decider and the full justification; nothing is written."""
    with pytest.raises(consumers.JustificationMissing) as caught:
        async with sessionmaker() as session, session.begin():
            await _create(session, quota_per_minute=51, quota_decision=decision)
    assert caught.value.missing  # the refusal names what is missing
    async with sessionmaker() as session:
        assert await consumers.list_teleservices(session=session) == []


async def test_a_decided_quota_is_recorded_with_its_justification(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """R-Q-2: the decision given at creation is a quota decision on the record (who,
    why, from the default to the decided value), journaled like any other."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session, quota_per_minute=900, quota_decision=TEST_GRANT)
        history = await quotas.quota_history(session=session, id_teleservice=created.id_teleservice)
        tags = await _tags(session)
    [decision] = history
    assert (decision.previous_per_minute, decision.per_minute) == (50, 900)
    assert decision.decided_by == TEST_GRANT.decided_by
    assert decision.justification == TEST_GRANT.justification
    assert tags[-1] == str(EventTag.CONSUMERS_TELESERVICE_QUOTA_DECIDED)


async def test_at_or_below_the_default_no_decision_is_needed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        created = await _create(session, quota_per_minute=50)
        view = await consumers.load_view(session=session, id_teleservice=created.id_teleservice)
        history = await quotas.quota_history(session=session, id_teleservice=created.id_teleservice)
    assert view is not None
    assert view.quota_per_minute == 50
    assert history == []


async def test_perimeter_expands_families_to_codes(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """R-GW-5: a code is in the perimeter by itself or through its family."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session, families=["bancaires"], codes=["TVA-CA3"])
        view = await consumers.load_view(session=session, id_teleservice=created.id_teleservice)
    assert view is not None
    assert view.allowed_codes == {"RIB-PRO", "MANDAT-SEPA", "TVA-CA3"}
    assert view.covers_code("RIB-PRO")
    assert view.covers_code("TVA-CA3")
    assert not view.covers_code("TVA-CA12")
    assert view.covers_period(dt.date(2020, 1, 1), dt.date(2024, 12, 31))
    assert not view.covers_period(dt.date(2019, 12, 1), dt.date(2020, 1, 31))
    assert not view.covers_period(dt.date(2024, 12, 1), dt.date(2025, 1, 31))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"organisation_siret": "13000000000006"}, "SIRET"),
        ({"families": ["inconnue"]}, "unknown families"),
        ({"codes": ["NOPE"]}, "not in the catalogue"),
        ({"families": [], "codes": []}, "at least one family or one code"),
        ({"period_start": dt.date(2025, 1, 1)}, "period_start is after period_end"),
        ({"valid_from": dt.date(2025, 1, 1), "valid_until": dt.date(2024, 1, 1)}, "valid_from"),
        ({"networks": ["10.0.0.5/8"]}, "host bits set"),
        ({"networks": ["not-a-network"]}, "networks"),
        ({"networks": []}, "at least one network"),
        ({"certificates": []}, "certificates"),
        ({"certificates": [CertificateRef(thumbprint="short", subject="x")]}, "x5t#S256"),
        ({"client_id": "a b"}, "client_id"),
        ({"id_teleservice": "-x"}, "id_teleservice"),
        ({"quota_per_minute": 0}, "quota_per_minute"),
        ({"name": " "}, "name"),
    ],
)
async def test_invalid_input_is_refused_with_a_readable_message(
    sessionmaker: async_sessionmaker[AsyncSession], changes: dict[str, Any], message: str
) -> None:
    async with sessionmaker() as session, session.begin():
        with pytest.raises(consumers.InvalidConsumerData, match=message):
            await _create(session, **changes)


async def test_unknown_organisation(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        with pytest.raises(consumers.NotFoundError, match="organisation inconnue"):
            await consumers.create_teleservice(
                session=session,
                organisation_siret=SIRET,
                name="x",
                environment=Environment.SANDBOX,
                certificates=[CERT.ref],
                families=["declaratives"],
                period_start=dt.date(2020, 1, 1),
                period_end=dt.date(2021, 1, 1),
                actor="t",
            )


async def test_identifiers_are_unique(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        await _create(session, client_id="client-x", id_teleservice="TS-X")
        with pytest.raises(consumers.InvalidConsumerData, match="déjà attribué"):
            await _create(session, client_id="client-x")
        with pytest.raises(consumers.InvalidConsumerData, match="déjà attribué"):
            await _create(session, id_teleservice="TS-X")


async def test_organisation_siret_is_checked_and_unique(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        with pytest.raises(consumers.InvalidConsumerData, match="SIRET invalide"):
            await consumers.create_organisation(
                session=session, siret="12345678901234", name="x", actor="t"
            )
        await consumers.create_organisation(session=session, siret=SIRET, name="Org", actor="t")
        with pytest.raises(consumers.InvalidConsumerData, match="existe déjà"):
            await consumers.create_organisation(session=session, siret=SIRET, name="Org", actor="t")
        kept = await consumers.ensure_organisation(
            session=session, siret=SIRET, name="Renamed", actor="t"
        )
    assert kept.name == "Org"


async def test_client_secret_is_shown_once_and_stored_hashed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        created = await _create(session, auth_method=AuthMethod.CLIENT_SECRET_BASIC)
    secret = created.client_secret
    assert secret is not None
    assert len(secret) >= 43
    assert secret not in repr(created)
    async with sessionmaker() as session:
        row = await session.scalar(select(Teleservice))
        view = await consumers.get_by_client_id(session=session, client_id=created.client_id)
        details = [e.details for e in await session.scalars(select(Event))]
    assert row is not None
    assert row.client_secret_hash is not None
    assert secret not in row.client_secret_hash
    assert row.client_secret_hash.startswith("scrypt$")
    assert secret not in str(details)
    assert await consumers.check_client_secret(view, secret)
    assert not await consumers.check_client_secret(view, secret + "x")
    assert not await consumers.check_client_secret(None, secret)
    assert view is not None
    assert "client_secret_hash" not in repr(view)


async def test_status_workflow(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Suspend and resume (R-SEC-2, R-OPS-2); revocation is final; each is journaled."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session)
        ident = created.id_teleservice
        suspended = await consumers.suspend(
            session=session, id_teleservice=ident, actor="ops", reason="homologation échue"
        )
        assert suspended.status is TeleserviceStatus.SUSPENDED
        assert not suspended.active_on(dt.datetime.now(dt.UTC).date())
        with pytest.raises(consumers.InvalidTransition, match="suspendu"):
            await consumers.suspend(session=session, id_teleservice=ident, actor="ops")
        resumed = await consumers.resume(session=session, id_teleservice=ident, actor="ops")
        assert resumed.status is TeleserviceStatus.ACTIVE
        revoked = await consumers.revoke(session=session, id_teleservice=ident, actor="ops")
        assert revoked.status is TeleserviceStatus.REVOKED
        for action in (consumers.resume, consumers.suspend, consumers.revoke):
            with pytest.raises(consumers.InvalidTransition):
                await action(session=session, id_teleservice=ident, actor="ops")
        with pytest.raises(consumers.NotFoundError):
            await consumers.suspend(session=session, id_teleservice="TS-NONE", actor="ops")
        events = list(await session.scalars(select(Event).order_by(Event.id)))
    assert [e.tag for e in events[-3:]] == [
        str(EventTag.CONSUMERS_TELESERVICE_SUSPENDED),
        str(EventTag.CONSUMERS_TELESERVICE_RESUMED),
        str(EventTag.CONSUMERS_TELESERVICE_REVOKED),
    ]
    assert events[-3].details["reason"] == "homologation échue"
    assert events[-3].actor == "ops"


async def test_validity_dates(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        created = await _create(
            session, valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2025, 12, 31)
        )
        view = await consumers.load_view(session=session, client_id=created.client_id)
    assert view is not None
    assert not view.active_on(dt.date(2024, 12, 31))
    assert view.active_on(dt.date(2025, 1, 1))
    assert view.active_on(dt.date(2025, 12, 31))
    assert not view.active_on(dt.date(2026, 1, 1))


async def test_find_by_thumbprint_across_teleservices(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """One certificate may serve several téléservices; ID_Teleservice tells which (R-GW-3)."""
    shared = make_certificate("shared")
    async with sessionmaker() as session, session.begin():
        first = await create_client(session, shared, client_id="client-a")
        second = await create_client(session, shared, client_id="client-b")
        found = await consumers.find_by_thumbprint(session=session, thumbprint=shared.thumbprint)
        none = await consumers.find_by_thumbprint(session=session, thumbprint="Z" * 43)
    assert [view.client_id for view in found] == [first.client_id, second.client_id]
    assert none == ()


async def test_load_view_is_one_query(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """The gateway's read: téléservice, organisation and certificates in one SELECT."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session, certificates=[CERT.ref, make_certificate("2").ref])
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async with sessionmaker() as session:
        engine = session.bind.sync_engine  # type: ignore[union-attr]
        event.listen(engine, "before_cursor_execute", count)
        try:
            by_client = await consumers.load_view(session=session, client_id=created.client_id)
            by_ident = await consumers.get_by_id_teleservice(
                session=session, id_teleservice=created.id_teleservice
            )
            by_cert = await consumers.find_by_thumbprint(
                session=session, thumbprint=CERT.thumbprint
            )
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 3
    assert by_client == by_ident == by_cert[0]
    assert by_client is not None
    assert len(by_client.thumbprints) == 2
    with pytest.raises(ValueError, match="exactly one"):
        await consumers.load_view(session=session)


async def test_replace_certificates(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    renewed = make_certificate("renewed")
    async with sessionmaker() as session, session.begin():
        created = await _create(session)
        view = await consumers.replace_certificates(
            session=session,
            id_teleservice=created.id_teleservice,
            certificates=[renewed.ref],
            actor="ops",
        )
        assert view.thumbprints == {renewed.thumbprint}
        assert await consumers.find_by_thumbprint(session=session, thumbprint=CERT.thumbprint) == ()
        with pytest.raises(consumers.InvalidConsumerData):
            await consumers.replace_certificates(
                session=session, id_teleservice=created.id_teleservice, certificates=[], actor="o"
            )
        with pytest.raises(consumers.InvalidConsumerData, match="mal formées"):
            await consumers.replace_certificates(
                session=session,
                id_teleservice=created.id_teleservice,
                certificates=[CertificateRef(thumbprint="bad", subject="x")],
                actor="o",
            )


async def test_list_filters(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        sandbox = await _create(session)
        production = await _create(session, name="P", environment=Environment.PRODUCTION)
        await consumers.suspend(session=session, id_teleservice=sandbox.id_teleservice, actor="t")
        everything = await consumers.list_teleservices(session=session)
        in_production = await consumers.list_teleservices(
            session=session, environment=Environment.PRODUCTION
        )
        suspended = await consumers.list_teleservices(
            session=session, status=TeleserviceStatus.SUSPENDED
        )
        of_org = await consumers.list_teleservices(session=session, organisation_siret=SIRET)
        of_other = await consumers.list_teleservices(
            session=session, organisation_siret="13000000000013"
        )
    assert [v.client_id for v in everything] == [sandbox.client_id, production.client_id]
    assert [v.client_id for v in in_production] == [production.client_id]
    assert [v.client_id for v in suspended] == [sandbox.client_id]
    assert len(of_org) == 2
    assert of_other == []


async def test_contacts_one_per_role_updated_in_place(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Contacts of a téléservice (R-HAB-1): set by role, kept when not given, journaled."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session)
        ident = created.id_teleservice
        await consumers.set_contacts(
            session=session,
            id_teleservice=ident,
            contacts=[
                Contact(ContactRole.DPO, "Dora", "dpo@example.fr"),
                Contact(ContactRole.TECHNIQUE, "Théo", "tech@example.fr"),
            ],
            actor="t",
        )
    async with sessionmaker() as session, session.begin():
        found = await consumers.set_contacts(
            session=session,
            id_teleservice=ident,
            contacts=[Contact(ContactRole.TECHNIQUE, " Tina ", "tina@example.fr")],
            actor="t",
        )
    assert found == [
        Contact(ContactRole.TECHNIQUE, "Tina", "tina@example.fr"),
        Contact(ContactRole.DPO, "Dora", "dpo@example.fr"),
    ]
    async with sessionmaker() as session:
        technical = await consumers.contacts_of(
            session=session, id_teleservice=ident, roles=[ContactRole.TECHNIQUE]
        )
        tags = await _tags(session)
    assert [contact.email for contact in technical] == ["tina@example.fr"]
    assert tags.count(str(EventTag.CONSUMERS_TELESERVICE_CONTACTS_SET)) == 2


@pytest.mark.parametrize(
    ("name", "email"),
    [("", "a@b.fr"), ("A", "a@b"), ("A", "a b@c.fr"), ("A", "@c.fr"), ("A", "a@@c.fr"),
     ("A", "x" * 65 + "@c.fr"), ("A", "a@" + "c" * 250 + ".fr"), ("A" * 201, "a@b.fr")],
)  # fmt: skip
def test_a_contact_is_validated(name: str, email: str) -> None:
    with pytest.raises(ValueError, match=r"contact|adresse"):
        Contact(ContactRole.DPO, name, email)


async def test_update_teleservice_keeps_identifiers_and_regenerates_the_mention(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """What a reopened habilitation's validation changes (R-HAB-4, R-CON-1)."""
    async with sessionmaker() as session, session.begin():
        created = await _create(session)
        view = await consumers.update_teleservice(
            session=session,
            id_teleservice=created.id_teleservice,
            name="Service renommé",
            families=["paiements"],
            codes=[],
            period_start=dt.date(2022, 1, 1),
            period_end=dt.date(2023, 12, 31),
            networks=["10.0.0.0/8"],
            actor="habilitations",
        )
        with pytest.raises(consumers.InvalidConsumerData, match="perimeter"):
            await consumers.update_teleservice(
                session=session,
                id_teleservice=created.id_teleservice,
                name="x",
                families=[],
                codes=[],
                period_start=dt.date(2022, 1, 1),
                period_end=dt.date(2023, 12, 31),
                networks=["10.0.0.0/8"],
                actor="o",
            )
        tags = await _tags(session)
    assert (view.client_id, view.id_teleservice) == (created.client_id, created.id_teleservice)
    assert view.families == frozenset({"paiements"})
    assert [str(network) for network in view.networks] == ["10.0.0.0/8"]
    assert "Service renommé" in view.mention_information
    assert tags[-1] == "consumers:teleservice:updated"
