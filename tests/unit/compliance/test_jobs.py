"""The clock's jobs (R-SEC-2, R-OPS-4): once per Paris day whoever runs them, journaled,
a failed day run again; ``ensu jobs run-due`` twice in a row sends nothing the second
time; ``ensu jobs list`` shows the last run and the next due time."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from ensu.accounts.principal import Actor
from ensu.app import create_app
from ensu.audit.models import Event
from ensu.compliance import jobs
from ensu.compliance import service as compliance
from ensu.compliance.models import CommitmentKind, JobRun
from ensu.config import Settings
from tests.unit.compliance.conftest import World, at

pytestmark = pytest.mark.anyio

D = dt.date
OPERATOR = Actor.system("cli:test")


async def due_in_45_days(world: World, name: str, today: dt.date) -> str:
    ts = await world.teleservice(name)
    async with world.sessionmaker() as session, session.begin():
        await compliance.record_commitment(
            session=session,
            id_teleservice=ts,
            kind=CommitmentKind.HOMOLOGATION,
            reference_date=D(2026, 6, 1),  # due 2026-03-01
            actor=OPERATOR,
            now=at(today),
        )
    return ts


async def test_two_runners_at_once_run_each_day_once(world: World) -> None:
    await due_in_45_days(world, "alpha", D(2026, 1, 15))
    first, second = await asyncio.gather(
        world.run_due(D(2026, 1, 15)), world.run_due(D(2026, 1, 15))
    )
    outcomes = sorted(r.outcome for r in first[0] + second[0])
    assert outcomes == ["ok"] * len(jobs.JOBS) + ["skipped"] * len(jobs.JOBS)
    assert sorted(world.inbox.subjects()) == sorted(
        [
            "Rappel : attestation d'homologation de sécurité à renouveler avant le 01/03/2026"
            " — Téléservice alpha"
        ]
        * 2
    )
    async with world.sessionmaker() as session:
        runs = list(
            await session.scalars(
                select(
                    JobRun.job,
                ).order_by(JobRun.job)
            )
        )
        events = list(
            await session.scalars(select(Event.details).where(Event.tag == "compliance:job:ran"))
        )
    assert runs == sorted(job.name for job in jobs.JOBS)
    assert {e["job"] for e in events} == {job.name for job in jobs.JOBS}


async def test_a_failed_day_is_run_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dt.date] = []

    async def flaky(ctx: jobs.Context) -> dict[str, int]:
        calls.append(ctx.today)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return {"done": 1}

    job = jobs.Job("flaky", "fails once", flaky)
    run = await jobs.run_job(
        job, sessionmaker=world.sessionmaker, settings=world.settings, now=at(D(2026, 1, 15))
    )
    assert run.outcome == "failed"
    async with world.sessionmaker() as session:
        journaled = list(
            await session.scalars(select(Event.details).where(Event.tag == "compliance:job:ran"))
        )
    assert [(e["job"], e["outcome"], e["error"]) for e in journaled] == [
        ("flaky", "failed", "RuntimeError('database hiccup')")
    ]
    again = await jobs.run_job(
        job, sessionmaker=world.sessionmaker, settings=world.settings, now=at(D(2026, 1, 15), 9)
    )
    assert (again.outcome, again.summary) == ("ok", {"done": 1})
    done = await jobs.run_job(
        job, sessionmaker=world.sessionmaker, settings=world.settings, now=at(D(2026, 1, 15), 10)
    )
    assert done.outcome == "skipped"
    assert calls == [D(2026, 1, 15)] * 2


async def test_a_slot_is_the_paris_day() -> None:
    # 2026-01-15 23:30 UTC is already the 16th in Paris (UTC+1).
    assert jobs.slot_of(dt.datetime(2026, 1, 15, 23, 30, tzinfo=dt.UTC)) == "2026-01-16"
    assert jobs.next_midnight(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)) == dt.datetime(
        2026, 7, 1, 22, tzinfo=dt.UTC
    )


async def test_the_server_runs_the_clock_in_the_background(world: World) -> None:
    """``ensu serve``'s loop (ENSU_JOBS_ENABLED): the day's jobs run without anyone."""
    scheduler = jobs.Scheduler(
        sessionmaker=world.sessionmaker, settings=world.settings, interval=3600
    )
    await scheduler.start()
    try:
        for _ in range(200):
            async with world.sessionmaker() as session:
                done = list(await session.scalars(select(JobRun.outcome)))
            if len(done) == len(jobs.JOBS) and "running" not in done:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.close()
    assert done == ["ok"] * len(jobs.JOBS)


async def test_the_deadlines_of_an_organisation_and_of_the_coming_days(world: World) -> None:
    ts = await due_in_45_days(world, "delta", D(2026, 1, 15))
    other = await world.teleservice("epsilon", siret="35600000000048")
    async with world.sessionmaker() as session, session.begin():
        await compliance.record_risk(
            session=session,
            id_teleservice=other,
            description="Journalisation absente.",
            resolution_deadline=D(2026, 2, 1),
            actor=OPERATOR,
            now=at(D(2026, 1, 15)),
        )
        await compliance.request_resiliation(
            session=session,
            id_teleservice=ts,
            party=compliance.Party.PRODUCER,
            reason="Fin de la convention.",
            effective_on=D(2026, 6, 30),
            actor=OPERATOR,
            now=at(D(2026, 1, 15)),
        )
    async with world.sessionmaker() as session:
        mine = await compliance.deadlines_of(
            session=session, organisation_siret="13000000000005", today=D(2026, 1, 15)
        )
        coming = await compliance.upcoming_deadlines(session=session, today=D(2026, 1, 15))
    assert [(d.on, d.kind, d.id_teleservice) for d in mine] == [
        (D(2026, 3, 1), "commitment", ts),
        (D(2026, 6, 30), "resiliation", ts),
    ]
    assert [(d.on, d.kind) for d in coming] == [
        (D(2026, 2, 1), "risk"),
        (D(2026, 3, 1), "commitment"),
    ]  # the resiliation is 166 days away


async def test_ensu_serve_s_app_carries_the_clock(sqlite_settings: Settings) -> None:
    """``create_app(served=True)``, as ``ensu serve`` makes it, runs the clock; the app
    of the tests (not served) and ``ENSU_JOBS_ENABLED=false`` do not."""
    quiet = {"probe_enabled": False, "metrics_port": 0}
    served = create_app(sqlite_settings.model_copy(update=quiet), served=True)
    async with served.router.lifespan_context(served):
        assert isinstance(served.state.compliance_clock, jobs.Scheduler)
    for app in (
        create_app(sqlite_settings),
        create_app(
            sqlite_settings.model_copy(update={**quiet, "jobs_enabled": False}), served=True
        ),
    ):
        async with app.router.lifespan_context(app):
            assert app.state.compliance_clock is None
