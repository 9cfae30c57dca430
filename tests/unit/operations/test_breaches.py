"""The register of personal-data breaches (R-OPS-3, CGU §6.6): the 72 hours to the CNIL
counted from the discovery in real time, alerted at 24 h and 6 h left and once overdue
(each once, by e-mail through a real SMTP server and by the webhook), the other
controllers — the responsable de traitement and the DPO of each téléservice concerned —
written to, and the register's commands."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.config import Environment, Settings, get_settings
from ensu.consumers import service as consumers
from ensu.operations import breaches
from ensu.operations.models import Breach
from ensu.webhooks import service as webhooks
from tests.support.certs import SIRET, make_certificate
from tests.support.cli import Invoke
from tests.support.contacts import every_role
from tests.support.smtp import Inbox, smtp_server
from tests.support.webhook_receiver import Receiver, receiver

CERT = make_certificate("breaches")
DISCOVERED = dt.datetime(2026, 10, 23, 10, 0, tzinfo=dt.UTC)  # the clocks go back on the 25th


def _breach(**changes: object) -> Breach:
    fields: dict[str, object] = {
        "discovered_at": DISCOVERED,
        "risk": "risk",
        "alerts": [],
        "cnil_notified_at": None,
    }
    return Breach(**{**fields, **changes})


def test_the_deadline_is_72_real_hours_after_the_discovery() -> None:
    assert breaches.deadline(_breach()) == dt.datetime(2026, 10, 26, 10, 0, tzinfo=dt.UTC)
    naive = _breach(discovered_at=DISCOVERED.replace(tzinfo=None))  # as SQLite reads it
    assert breaches.deadline(naive) == breaches.deadline(_breach())


def test_the_alerts_come_at_24_hours_6_hours_and_overdue_each_once() -> None:
    due = breaches.deadline(_breach())

    def at(hours: float) -> dt.datetime:
        return due - dt.timedelta(hours=hours)

    assert breaches.due_alert(_breach(), at(30)) is None
    assert breaches.due_alert(_breach(), at(23)) == "24h"
    assert breaches.due_alert(_breach(alerts=["24h"]), at(23)) is None
    assert breaches.due_alert(_breach(alerts=["24h"]), at(5)) == "6h"
    assert breaches.due_alert(_breach(), at(5)) == "6h"  # the tightest that applies
    assert breaches.due_alert(_breach(alerts=["24h", "6h"]), at(-1)) == "overdue"
    assert breaches.due_alert(_breach(alerts=["overdue"]), at(-5)) is None
    assert breaches.due_alert(_breach(risk="unlikely"), at(1)) is None
    assert breaches.due_alert(_breach(cnil_notified_at=DISCOVERED), at(1)) is None


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as (running, _port):
        yield running


@pytest.fixture
def settings(var_dir: Path, database_url: str, inbox: Inbox) -> Settings:
    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        alert_emails=["rssi@dgfip.example"],
        webhook_allow_http=True,
    )


async def _teleservice(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        await consumers.ensure_organisation(session=session, siret=SIRET, name="Org", actor="t")
        await consumers.create_teleservice(
            session=session,
            organisation_siret=SIRET,
            name="TS",
            environment=Environment.SANDBOX,
            certificates=[CERT.ref],
            families=["declaratives"],
            period_start=dt.date(2020, 1, 1),
            period_end=dt.date(2024, 12, 31),
            id_teleservice="TS-BREACH",
            actor="t",
        )
        await consumers.set_contacts(
            session=session,
            id_teleservice="TS-BREACH",
            contacts=every_role(),
            actor="t",
        )


async def _record(sessionmaker: async_sessionmaker[AsyncSession], discovered: dt.datetime) -> int:
    async with sessionmaker() as session, session.begin():
        breach = await breaches.record(
            session=session,
            title="Export de journal égaré",
            description="Une clé USB contenant un export a été perdue.",
            discovered_at=discovered,
            nature=("confidentiality",),
            risk="risk",
            teleservices=("TS-BREACH",),
            actor="ops",
        )
        return breach.id


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.mark.anyio
async def test_remind_alerts_by_mail_and_webhook_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    hook: Receiver,
    inbox: Inbox,
) -> None:
    await _teleservice(sessionmaker)
    now = dt.datetime.now(dt.UTC)
    breach_id = await _record(sessionmaker, now - dt.timedelta(hours=50))  # 22 h left
    async with sessionmaker() as session, session.begin():
        await webhooks.add(
            session=session, settings=settings, url=hook.url, event_types=["breach.*"],
            secret="x" * 20, actor="t",
        )  # fmt: skip
    assert await breaches.remind(settings=settings, sessionmaker=sessionmaker) == [
        (breach_id, "24h")
    ]
    assert await breaches.remind(settings=settings, sessionmaker=sessionmaker) == []
    later = now + dt.timedelta(hours=17)
    assert await breaches.remind(settings=settings, sessionmaker=sessionmaker, now=later) == [
        (breach_id, "6h")
    ]
    [(_, recipients, first), _] = inbox.messages
    assert recipients == ["rssi@dgfip.example"]
    assert "Violation" in str(first["Subject"]) or "=?utf-8?" in str(first["Subject"])
    await webhooks.deliver_due(sessionmaker=sessionmaker, settings=settings, now=later)
    kinds = [json.loads(got.body)["data"]["alert"] for got in hook.received]
    assert kinds == ["24h", "6h"]
    async with sessionmaker() as session, session.begin():
        await breaches.notify_cnil(
            session=session, breach_id=breach_id, reference="CNIL-2026-001", actor="ops"
        )
    overdue = now + dt.timedelta(hours=30)
    assert await breaches.remind(settings=settings, sessionmaker=sessionmaker, now=overdue) == []


@pytest.mark.anyio
async def test_the_other_controllers_are_written_to(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, inbox: Inbox
) -> None:
    await _teleservice(sessionmaker)
    breach_id = await _record(sessionmaker, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    notices = await breaches.inform_controllers(
        settings=settings,
        sessionmaker=sessionmaker,
        breach_id=breach_id,
        actor="ops",
        message="Les données de trois entreprises sont concernées.",
    )
    assert [(n["role"], n["email"], n["outcome"]) for n in notices] == [
        ("responsable_traitement", "rt@org.example", "sent"),
        ("dpo", "dpo@org.example", "sent"),
    ]
    assert sorted(r for _, rs, _ in inbox.messages for r in rs) == [
        "dpo@org.example",
        "rt@org.example",
    ]
    async with sessionmaker() as session:
        [stored] = await breaches.register(session=session)
    assert len(stored.notices) == 2


@pytest.fixture
def cli(run: Invoke, sqlite_settings: Settings) -> Invoke:
    del sqlite_settings
    get_settings.cache_clear()
    return run


def test_the_register_commands(cli: Invoke) -> None:
    refused = cli(
        "breaches", "record", "--title", "t", "--description", "d",
        "--discovered", "2999-01-01T00:00", "--nature", "confidentiality", "--risk", "risk",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "future" in refused.output
    recorded = cli(
        "breaches", "record", "--title", "Fuite", "--description", "Un export perdu",
        "--discovered", "2026-01-05T09:00+01:00", "--nature", "confidentiality",
        "--risk", "risk",
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    assert "to notify the CNIL by 2026-01-08 08:00 UTC" in recorded.output
    listed = cli("breaches", "list")
    assert listed.exit_code == 1  # overdue: the command says so by its status
    assert "overdue" in listed.output
    closing = cli("breaches", "close", "1")
    assert closing.exit_code == 1
    assert "must be notified" in closing.output
    notified = cli("breaches", "notify-cnil", "1", "--reference", "CNIL-42")
    assert notified.exit_code == 0
    assert "LATE" in notified.output
    assert cli("breaches", "list").exit_code == 0
    assert cli("breaches", "close", "1").exit_code == 0
    assert "Fuite" in cli("breaches", "list", "--all").output
