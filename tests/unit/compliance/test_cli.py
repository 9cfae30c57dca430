"""``ensu jobs`` as cron runs it (R-SEC-2, R-OPS-4): ``run-due`` twice in a row sends
nothing the second time; ``list`` shows each job's last run and next due time."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from ensu import db
from ensu.compliance import jobs
from ensu.config import Settings
from tests.support.cli import Invoke
from tests.support.smtp import Inbox, smtp_server
from tests.unit.compliance.conftest import TECH, World
from tests.unit.compliance.test_jobs import due_in_45_days


async def _setup(settings: Settings, inbox: Inbox, name: str) -> None:
    engine = db.make_engine(settings.database_url)
    try:
        world = World(settings, db.make_sessionmaker(engine), inbox)
        await due_in_45_days(world, name, dt.date(2026, 1, 15))
    finally:
        await engine.dispose()


@pytest.fixture
def inbox_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    with smtp_server() as (inbox, port):
        monkeypatch.setenv("ENSU_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ENSU_SMTP_PORT", str(port))
        yield inbox


def test_run_due_twice_sends_nothing_the_second_time(
    run: Invoke, sqlite_settings: Settings, inbox_env: Inbox
) -> None:
    asyncio.run(_setup(sqlite_settings, inbox_env, "beta"))
    listed = run("jobs", "list", "--now", "2026-01-15T09:00")
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("never") == len(jobs.JOBS)

    first = run("jobs", "run-due", "--now", "2026-01-15T09:00")
    assert first.exit_code == 0, first.output
    assert "commitments 2026-01-15: ok reminders=2, suspensions=0" in first.output
    assert "notices: 2 sent" in first.output
    assert len(inbox_env.messages) == 2
    second = run("jobs", "run-due", "--now", "2026-01-15T09:05")
    assert second.exit_code == 0, second.output
    assert "commitments 2026-01-15: skipped" in second.output
    assert "notices: 0 sent" in second.output
    assert len(inbox_env.messages) == 2

    later = run("jobs", "list", "--now", "2026-01-15T10:00")
    assert "2026-01-16T00:00+01:00" in later.output  # the next due time, Paris
    assert "never" not in later.output
    assert "0 notice(s) waiting" in later.output
    assert TECH in {to for _s, recipients, _m in inbox_env.messages for to in recipients}


def test_without_smtp_the_notices_wait(run: Invoke, sqlite_settings: Settings) -> None:
    asyncio.run(_setup(sqlite_settings, Inbox(), "gamma"))
    result = run("jobs", "run-due", "--now", "2026-01-15T09:00")
    assert "ENSU_SMTP_HOST is not set, pending notices kept" in result.output
    assert "2 notice(s) waiting" in run("jobs", "list", "--now", "2026-01-15T10:00").output
    assert run("jobs", "run-due", "--now", "bad").exit_code == 2


def test_an_operator_records_and_reads_with_ensu_compliance(
    run: Invoke, sqlite_settings: Settings
) -> None:
    asyncio.run(_setup(sqlite_settings, Inbox(), "delta"))
    recorded = run(
        "compliance", "commitment", "set", "TS-DELTA", "--kind", "questionnaire",
        "--date", "2025-12-01", "--submitted",
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    assert "(questionnaire, submitted): next one due by 2028-12-01" in recorded.output
    commitment_id = recorded.output.split()[1]
    assert run("compliance", "commitment", "validate", commitment_id).exit_code == 0
    listing = run("compliance", "commitment", "list", "TS-DELTA").output
    assert "superseded" in listing
    assert "validated" in listing
    refused = run(
        "compliance", "resiliation", "request", "TS-DELTA", "--party", "consumer",
        "--reason", "Fin.", "--effective", "2026-01-01",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "préavis de deux mois" in refused.output
    deadlines = run("compliance", "deadlines", "--siret", "13000000000005").output
    assert "2028-12-01" in deadlines
    assert "v2023-11" in run("compliance", "terms", "list").output
    assert run("jobs", "run-due", "--now", "2028-11-01T09:00").exit_code == 0  # 30 days to go
    notices = run("compliance", "notices", "13000000000005").output
    assert "Rappel" in notices
    assert "pending" in notices  # no SMTP here: kept, to be sent
    early = run(
        "compliance", "change", "announce", "--title", "T", "--description", "D",
        "--effective", "2020-01-01",
    )  # fmt: skip
    assert early.exit_code == 1
    assert "jours ouvrés" in early.output
