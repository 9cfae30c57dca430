"""The compliance clock: the scheduled jobs that enforce the terms' dates.

Each job runs once per *slot*, its Paris day (the terms' dates are French legal dates,
:mod:`ensu.clock`), from midnight on. Two runners may run at once — the loop inside
``ensu serve`` (:class:`Scheduler`) and ``ensu jobs run-due`` from cron — so a run first
*claims* its slot (a unique ``job_runs (job, slot)`` row, in its own transaction); the
other runner sees the claim and skips. A failed slot is claimed again at the next run; a
claim left ``running`` by a runner that died is taken over after :data:`STALE_CLAIM`.
The job's work and the notices it writes commit together; every notice has a unique key
per event and recipient (:mod:`ensu.compliance.notices`), so even a slot run again
writes nothing twice. The notices are then mailed by :func:`ensu.compliance.notices.dispatch`.

Time is injected (``now``): the tests, and ``ensu jobs run-due --now ISO-TIME``, run the
clock at any instant. Every run is journaled (``compliance:job:ran``).

- ``commitments``: reminders 120 to 7 days before a security deadline, suspension the day
  after it (R-SEC-2 to R-SEC-4);
- ``resiliations``: ends the exchanges whose resiliation takes effect (R-SQ-5);
- ``terms``: reminds the organisations that have not accepted the terms in force (R-SQ-6);
- ``retention``: purges the data 6 years after the end of delivery (R-TR-4).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import clock
from ensu.accounts.principal import Actor
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.background import StopSignal
from ensu.compliance import commitments, notices, resiliations, retention, terms
from ensu.compliance.models import JobRun
from ensu.config import Settings

logger = logging.getLogger("ensu.compliance")

RUNNING, OK, FAILED = "running", "ok", "failed"
#: A claim still ``running`` after this was left by a runner that died.
STALE_CLAIM = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Context:
    session: AsyncSession
    settings: Settings
    now: dt.datetime
    today: dt.date
    actor: Actor


Work = Callable[[Context], Awaitable[dict[str, int]]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    description: str
    work: Work


async def _commitments(ctx: Context) -> dict[str, int]:
    return await commitments.enforce(
        session=ctx.session, today=ctx.today, now=ctx.now, actor=ctx.actor
    )


async def _resiliations(ctx: Context) -> dict[str, int]:
    return await resiliations.end_due(
        session=ctx.session, today=ctx.today, now=ctx.now, actor=ctx.actor
    )


async def _terms(ctx: Context) -> dict[str, int]:
    return await terms.remind(session=ctx.session, today=ctx.today, now=ctx.now)


async def _retention(ctx: Context) -> dict[str, int]:
    return await retention.run(session=ctx.session, today=ctx.today, actor=ctx.actor, now=ctx.now)


#: The clock's jobs, in the order they run.
JOBS: tuple[Job, ...] = (
    Job("commitments", "security commitments: reminders, suspensions (R-SEC-2..4)", _commitments),
    Job(
        "resiliations", "ends the exchanges whose resiliation is effective (R-SQ-5)", _resiliations
    ),
    Job("terms", "reminds organisations of terms not accepted (R-SQ-6)", _terms),
    Job("retention", "purges data 6 years after the end of delivery (R-TR-4)", _retention),
)


def slot_of(now: dt.datetime) -> str:
    """A daily job's slot: the Paris date at ``now``."""
    return clock.legal_date(now).isoformat()


def next_midnight(now: dt.datetime) -> dt.datetime:
    """The next Paris midnight after ``now`` (aware, UTC)."""
    tomorrow = clock.legal_date(now) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(), clock.PARIS).astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class RunResult:
    job: str
    slot: str
    outcome: str  # ok, failed, skipped (claimed by another run, or done)
    summary: dict[str, int]


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], job: str, slot: str, now: dt.datetime
) -> bool:
    """Take the slot: a new row, or a failed or stale one taken over."""
    try:
        async with sessionmaker() as session, session.begin():
            taken = await session.execute(
                update(JobRun)
                .where(
                    JobRun.job == job,
                    JobRun.slot == slot,
                    or_(
                        JobRun.outcome == FAILED,
                        (JobRun.outcome == RUNNING) & (JobRun.started_at < now - STALE_CLAIM),
                    ),
                )
                .values(outcome=RUNNING, started_at=now, finished_at=None)
            )
            if getattr(taken, "rowcount", 0):
                return True
            exists = await session.scalar(
                select(JobRun.id).where(JobRun.job == job, JobRun.slot == slot)
            )
            if exists is not None:
                return False
            session.add(JobRun(job=job, slot=slot, outcome=RUNNING, started_at=now, summary={}))
    except IntegrityError:
        return False  # another runner inserted the claim first
    return True


async def _close_slot(
    session: AsyncSession,
    *,
    job: str,
    slot: str,
    outcome: str,
    summary: Mapping[str, object],
    now: dt.datetime,
) -> None:
    """Record the slot's outcome and journal the run (``compliance:job:ran``)."""
    await session.execute(
        update(JobRun)
        .where(JobRun.job == job, JobRun.slot == slot)
        .values(outcome=outcome, finished_at=now, summary=summary)
    )
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_JOB_RAN,
        actor=f"job:{job}",
        details={"job": job, "slot": slot, "outcome": outcome, **summary},
    )


async def run_job(
    job: Job,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: dt.datetime,
) -> RunResult:
    """Run ``job`` for the slot of ``now`` if nobody has (or is)."""
    slot = slot_of(now)
    if not await _claim(sessionmaker, job.name, slot, now):
        return RunResult(job.name, slot, "skipped", {})
    actor = Actor.system(f"job:{job.name}")
    try:
        async with sessionmaker() as session, session.begin():
            context = Context(session, settings, now, clock.legal_date(now), actor)
            summary = await job.work(context)
            await _close_slot(
                session, job=job.name, slot=slot, outcome=OK, summary=summary, now=now
            )
    except Exception as exc:  # the slot is run again next time; the error is kept
        logger.exception("job %s (%s) failed", job.name, slot)
        async with sessionmaker() as session, session.begin():
            await _close_slot(
                session,
                job=job.name,
                slot=slot,
                outcome=FAILED,
                summary={"error": repr(exc)[:500]},
                now=now,
            )
        return RunResult(job.name, slot, FAILED, {})
    return RunResult(job.name, slot, OK, summary)


async def run_due(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: dt.datetime | None = None,
    dispatch: bool = True,
) -> tuple[list[RunResult], notices.DispatchReport]:
    """Run every job whose slot has not run, then mail the pending notices."""
    moment = now or clock.now()
    results = [
        await run_job(job, sessionmaker=sessionmaker, settings=settings, now=moment) for job in JOBS
    ]
    report = notices.DispatchReport()
    if dispatch:
        report = await notices.dispatch(sessionmaker=sessionmaker, settings=settings, now=moment)
    return results, report


@dataclass(frozen=True, slots=True)
class JobStatus:
    name: str
    description: str
    last_slot: str | None
    last_outcome: str | None
    last_finished: dt.datetime | None
    next_due: dt.datetime


async def statuses(*, session: AsyncSession, now: dt.datetime | None = None) -> list[JobStatus]:
    """Each job, its last run and its next due time (``ensu jobs list``)."""
    moment = now or clock.now()
    today = slot_of(moment)
    found = []
    for job in JOBS:
        last = await session.scalar(
            select(JobRun).where(JobRun.job == job.name).order_by(JobRun.slot.desc()).limit(1)
        )
        done_today = last is not None and last.slot == today and last.outcome != FAILED
        finished = last.finished_at if last is not None else None
        if finished is not None and finished.tzinfo is None:
            finished = finished.replace(tzinfo=dt.UTC)
        found.append(
            JobStatus(
                name=job.name,
                description=job.description,
                last_slot=last.slot if last is not None else None,
                last_outcome=last.outcome if last is not None else None,
                last_finished=finished,
                next_due=next_midnight(moment) if done_today else moment,
            )
        )
    return found


class Scheduler:
    """The clock inside ``ensu serve``: :func:`run_due` every ``interval`` seconds."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        interval: float,
    ) -> None:
        self.sessionmaker, self.settings, self.interval = sessionmaker, settings, interval
        self._stopper = StopSignal()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="compliance-clock")

    async def close(self) -> None:
        self._stopper.stop()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await run_due(sessionmaker=self.sessionmaker, settings=self.settings)
            except Exception:  # the database may be down: try again next time
                logger.exception("compliance clock: run failed")
            if await self._stopper.sleep(self.interval):
                return
