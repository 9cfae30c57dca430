"""``ensu jobs``: the compliance clock's scheduled jobs, for cron and operators.

``ensu serve`` runs them itself (``ENSU_JOBS_ENABLED``); ``run-due`` runs what is due
now (or at ``--now``), safely beside the server: a job's day is claimed once, and every
notice has a unique key, so running it twice sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import clock
from ensu.cli.consumers import run, run_with_sessionmaker
from ensu.compliance import jobs, notices
from ensu.config import get_settings
from ensu.operations import maintenance

app = typer.Typer(help="The compliance clock's jobs: list, run-due.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Run as if at this ISO 8601 time (without offset: Paris)."),
]


def _now(text: str | None) -> dt.datetime:
    if text is None:
        return clock.now()
    try:
        return maintenance.parse_moment(text)
    except maintenance.WindowRefused as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _paris(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(clock.PARIS).isoformat(timespec="minutes")


@app.command("run-due")
def run_due(now: NowOption = None) -> None:
    """Run every job due now (each once a Paris day), then mail the pending notices;
    exit status 1 when a job failed."""
    moment = _now(now)
    settings = get_settings()

    async def work(
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> tuple[list[jobs.RunResult], notices.DispatchReport]:
        return await jobs.run_due(sessionmaker=sessionmaker, settings=settings, now=moment)

    results, report = run_with_sessionmaker(work, expected=())
    for result in results:
        details = ", ".join(f"{key}={value}" for key, value in result.summary.items())
        console.print(f"{result.job} {result.slot}: {result.outcome} {details}".rstrip())
    console.print(f"notices: {report.sent} sent, {report.failed} failed")
    if report.not_configured:
        console.print("notices: ENSU_SMTP_HOST is not set, pending notices kept")
    if any(result.outcome == jobs.FAILED for result in results):
        raise typer.Exit(1)


@app.command("list")
def list_(now: NowOption = None) -> None:
    """Each job, its last run and its next due time (Europe/Paris)."""
    moment = _now(now)

    async def work(session: AsyncSession) -> tuple[list[jobs.JobStatus], int]:
        found = await jobs.statuses(session=session, now=moment)
        return found, await notices.pending_count(session=session)

    found, pending = run(work, expected=())
    table = Table(title=f"compliance clock at {_paris(moment)} (Europe/Paris)")
    for column in ("job", "last run", "outcome", "finished", "next due", "what"):
        table.add_column(column)
    for status in found:
        table.add_row(
            status.name,
            status.last_slot or "never",
            status.last_outcome or "-",
            _paris(status.last_finished),
            "now" if status.next_due <= moment else _paris(status.next_due),
            status.description,
        )
    console.print(table)
    console.print(f"{pending} notice(s) waiting to be mailed")
