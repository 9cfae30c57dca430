"""Incidents through the phases of CGU §8 (R-OPS-2), on SQLite and PostgreSQL: an
organisation isolated at once, a temporary restriction (lower quota above the default,
fewer codes, shorter period) lifted at closure with the quota's own justification, the
closure refused until the checklist, the cause and the journal allow it, the review."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import keys
from ensu.audit.store import JournalStore
from ensu.config import Environment, Settings
from ensu.consumers import quota as quotas
from ensu.consumers import service as consumers
from ensu.consumers.models import TeleserviceStatus
from ensu.operations import incidents, isolation
from tests.support.certs import SIRET, make_certificate
from tests.support.contacts import every_role
from tests.support.smtp import smtp_server

CERT = make_certificate("incidents")
JUSTIFIED = quotas.QuotaJustification(
    load_peaks="campagne de mai", files_count=1000, periodicity="quotidienne"
)


@pytest.fixture
def settings(var_dir: Path, database_url: str) -> Settings:
    """A deployment whose journal exists (closure verifies it)."""
    settings = Settings(var_dir=var_dir, database_url=database_url)
    keys.load_or_create_signer(settings)

    async def create() -> None:
        journal = JournalStore.for_settings(settings)
        try:
            await journal.ensure_schema()
        finally:
            await journal.dispose()

    anyio.run(create)
    return settings


async def _teleservices(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        await consumers.ensure_organisation(session=session, siret=SIRET, name="Org", actor="t")
        for name in ("TS-ONE", "TS-TWO"):
            await consumers.create_teleservice(
                session=session,
                organisation_siret=SIRET,
                name=name,
                environment=Environment.SANDBOX,
                certificates=[CERT.ref],
                families=["declaratives"],
                period_start=dt.date(2020, 1, 1),
                period_end=dt.date(2024, 12, 31),
                id_teleservice=name,
                actor="t",
            )
        await quotas.decide_quota(
            session=session,
            id_teleservice="TS-ONE",
            per_minute=400,
            decided_by="Mme Martin",
            justification=JUSTIFIED,
            actor="t",
        )


async def _open(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session, session.begin():
        incident = await incidents.open_incident(
            session=session, title="fuite de clé", kind="credential_compromise",
            severity="critical", actor="ops",
        )  # fmt: skip
        return incident.id


async def _view(sessionmaker: async_sessionmaker[AsyncSession], name: str) -> object:
    async with sessionmaker() as session:
        return await consumers.get_by_id_teleservice(session=session, id_teleservice=name)


@pytest.mark.anyio
async def test_an_organisation_is_isolated_whole_then_restored_at_closure(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await _teleservices(sessionmaker)
    incident_id = await _open(sessionmaker)
    async with sessionmaker() as session, session.begin():
        done = await incidents.isolate(
            session=session, incident_id=incident_id, actor="ops", reason="clé volée",
            organisation=SIRET,
        )  # fmt: skip
        assert done.targets == ("TS-ONE", "TS-TWO")
        await incidents.isolate(
            session=session, incident_id=incident_id, actor="ops", reason="tout", whole_service=True
        )
        with pytest.raises(incidents.IncidentError, match="cut already"):
            await incidents.isolate(
                session=session, incident_id=incident_id, actor="ops", reason="x",
                whole_service=True,
            )  # fmt: skip
        assert await isolation.open_cut(session=session) is not None
    for name in ("TS-ONE", "TS-TWO"):
        view = await _view(sessionmaker, name)
        assert getattr(view, "status", None) is TeleserviceStatus.SUSPENDED
    async with sessionmaker() as session, session.begin():
        with pytest.raises(incidents.IncidentError, match="not verified yet"):
            await incidents.close(
                session=session, settings=settings, incident_id=incident_id, actor="ops"
            )
        for item in incidents.CHECKLIST:
            await incidents.check(
                session=session, incident_id=incident_id, item=item, note="ok", actor="ops"
            )
        with pytest.raises(incidents.IncidentError, match="qualification and the cause"):
            await incidents.close(
                session=session, settings=settings, incident_id=incident_id, actor="ops"
            )
        await incidents.qualify(
            session=session, incident_id=incident_id, qualification="deux services",
            cause="clé publiée", actor="ops",
        )  # fmt: skip
        lifted = await incidents.close(
            session=session, settings=settings, incident_id=incident_id, actor="ops"
        )
    assert sorted(lifted) == [
        "cut_service service",
        "isolate_teleservice TS-ONE",
        "isolate_teleservice TS-TWO",
    ]
    for name in ("TS-ONE", "TS-TWO"):
        view = await _view(sessionmaker, name)
        assert getattr(view, "status", None) is TeleserviceStatus.ACTIVE
    async with sessionmaker() as session:
        assert await isolation.open_cut(session=session) is None
        with pytest.raises(incidents.IncidentError, match="closed"):
            await incidents.check(
                session=session, incident_id=incident_id, item="cause_analysed", note="x",
                actor="ops",
            )  # fmt: skip


@pytest.mark.anyio
async def test_a_restriction_narrows_and_is_lifted_with_the_quota_justification(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await _teleservices(sessionmaker)
    incident_id = await _open(sessionmaker)
    async with sessionmaker() as session, session.begin():
        with pytest.raises(incidents.IncidentError, match="inférieur"):
            await incidents.restrict(
                session=session, incident_id=incident_id, teleservice="TS-ONE", actor="ops",
                reason="x", quota_per_minute=401,
            )  # fmt: skip
    async with sessionmaker() as session, session.begin():
        with pytest.raises(incidents.IncidentError, match="hors du périmètre"):
            await incidents.restrict(
                session=session, incident_id=incident_id, teleservice="TS-ONE", actor="ops",
                reason="x", codes=("RIB-PRO",),
            )  # fmt: skip
    async with sessionmaker() as session, session.begin():
        await incidents.restrict(
            session=session, incident_id=incident_id, teleservice="TS-ONE", actor="ops",
            reason="limiter", quota_per_minute=5, codes=("TVA-CA3",),
            period_start=dt.date(2024, 1, 1),
        )  # fmt: skip
    view = await _view(sessionmaker, "TS-ONE")
    assert getattr(view, "quota_per_minute", None) == 5
    assert getattr(view, "allowed_codes", None) == frozenset({"TVA-CA3"})
    assert getattr(view, "period_start", None) == dt.date(2024, 1, 1)
    async with sessionmaker() as session, session.begin():
        for item in incidents.CHECKLIST:
            await incidents.check(
                session=session, incident_id=incident_id, item=item, note="ok", actor="ops"
            )
        await incidents.qualify(
            session=session, incident_id=incident_id, qualification="q", cause="c", actor="ops"
        )
        await incidents.close(
            session=session, settings=settings, incident_id=incident_id, actor="ops"
        )
    view = await _view(sessionmaker, "TS-ONE")
    assert getattr(view, "quota_per_minute", None) == 400  # above the default: justified
    assert "TVA-CA3" in getattr(view, "allowed_codes", frozenset())
    assert len(getattr(view, "allowed_codes", frozenset())) > 1
    assert getattr(view, "period_start", None) == dt.date(2020, 1, 1)
    async with sessionmaker() as session:
        history = await quotas.quota_history(session=session, id_teleservice="TS-ONE")
        report = await incidents.review(
            session=session,
            start=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
            end=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
        )
    assert [d.per_minute for d in history] == [400, 5, 400]
    assert history[-1].justification == JUSTIFIED
    assert report["by_kind"] == {"credential_compromise": {"critical": 1}}
    assert report["open"] == 0
    assert report["median_hours_to_close"] is not None


@pytest.mark.anyio
async def test_isolate_names_exactly_one_target(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    incident_id = await _open(sessionmaker)
    async with sessionmaker() as session, session.begin():
        with pytest.raises(incidents.IncidentError, match="one téléservice"):
            await incidents.isolate(
                session=session, incident_id=incident_id, actor="ops", reason="x",
                teleservice="TS-ONE", whole_service=True,
            )  # fmt: skip
        with pytest.raises(incidents.IncidentError, match="type"):
            await incidents.open_incident(
                session=session, title="t", kind="nope", severity="low", actor="ops"
            )


@pytest.mark.anyio
async def test_the_consumers_concerned_are_written_to(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """R-OPS-4: the technical contact and the responsable de traitement of the isolated
    téléservice (not its DPO, not the others) receive the notice; it is kept."""
    await _teleservices(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await consumers.set_contacts(
            session=session,
            id_teleservice="TS-ONE",
            contacts=every_role(),
            actor="t",
        )
    incident_id = await _open(sessionmaker)
    with pytest.raises(incidents.IncidentError, match="no téléservice concerned"):
        await incidents.inform(
            settings=settings, sessionmaker=sessionmaker, incident_id=incident_id,
            actor="ops", message="x",
        )  # fmt: skip
    async with sessionmaker() as session, session.begin():
        await incidents.isolate(
            session=session, incident_id=incident_id, actor="ops", reason="r",
            teleservice="TS-ONE",
        )  # fmt: skip
    with smtp_server() as (inbox, _port):
        mailing = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": inbox.port})
        sent = await incidents.inform(
            settings=mailing, sessionmaker=sessionmaker, incident_id=incident_id,
            actor="ops", message="Votre téléservice est suspendu : clé compromise.",
        )  # fmt: skip
    assert [(n["role"], n["email"], n["outcome"]) for n in sent] == [
        ("technique", "tech@org.example", "sent"),
        ("responsable_traitement", "rt@org.example", "sent"),
    ]
    assert sorted(r for _, rs, _ in inbox.messages for r in rs) == [
        "rt@org.example",
        "tech@org.example",
    ]
    async with sessionmaker() as session:
        done = await incidents.actions(session=session, incident_id=incident_id)
    assert done[-1].action == "inform"
    assert done[-1].details["sent"] == 2
