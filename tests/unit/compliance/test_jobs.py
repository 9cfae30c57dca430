"""The clock's jobs (R-SEC-2, R-OPS-4): once per Paris day whoever runs them, journaled,
a failed day run again; ``ensu jobs run-due`` twice in a row sends nothing the second
time; ``ensu jobs list`` shows the last run and the next due time."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from ensu.accounts.principal import Actor
from ensu.audit.models import Event
from ensu.compliance import jobs
from ensu.compliance import service as compliance
from ensu.compliance.models import CommitmentKind, JobRun
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
