"""``ensu maintenance``: the planned maintenance windows (R-SQ-1).

A time without an offset is Europe/Paris wall-clock time; the rules (2 hours of real
time at most, inside one night's 23:00-06:00 Paris, one window a night) are in
:mod:`ensu.operations.maintenance`. Every instance behind the database follows a window
planned or cancelled here within a second.
"""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.cli.consumers import actor, errors, run
from ensu.operations import maintenance
from ensu.operations.models import MaintenanceWindow

app = typer.Typer(help="Maintenance windows: plan, list, cancel.", no_args_is_help=True)
console = Console()
EXPECTED = (maintenance.WindowRefused, maintenance.WindowNotFound)


def _paris(moment: dt.datetime) -> str:
    return maintenance.utc(moment).astimezone(maintenance.PARIS).isoformat(timespec="minutes")


@app.command()
def plan(
    start: str = typer.Option(..., "--start", help="ISO 8601; without offset: Paris time."),
    end: str = typer.Option(..., "--end", help="ISO 8601; without offset: Paris time."),
    reason: str = typer.Option(..., "--reason", help="Why (journaled, shown to operators)."),
) -> None:
    """Plan a window: at most 2 hours of real time between 23:00 and 06:00 Paris, one a
    night; exit status 1 with the reason when refused."""
    try:
        first, last = maintenance.parse_moment(start), maintenance.parse_moment(end)
    except maintenance.WindowRefused as exc:
        errors.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None
    now = dt.datetime.now(dt.UTC)

    async def work(session: AsyncSession) -> MaintenanceWindow:
        return await maintenance.plan(
            session=session, start=first, end=last, reason=reason, actor=actor(), now=now
        )

    window = run(work, expected=EXPECTED)
    minutes = int((maintenance.utc(window.end_at) - maintenance.utc(window.start_at)).seconds / 60)
    console.print(
        f"window {window.id} planned: {_paris(window.start_at)} → {_paris(window.end_at)}"
        f" ({minutes} min of real time)"
    )


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Past and cancelled windows too."),
) -> None:
    """The planned windows not over yet (``--all``: every window)."""
    since = None if all_ else dt.datetime.now(dt.UTC)

    async def work(session: AsyncSession) -> list[MaintenanceWindow]:
        return await maintenance.windows(session=session, since=since, cancelled=all_)

    rows = run(work, expected=EXPECTED)
    table = Table(title=f"{len(rows)} maintenance window(s), Europe/Paris")
    for column in ("id", "start", "end", "reason", "planned by", "status"):
        table.add_column(column)
    for row in rows:
        status = f"cancelled by {row.cancelled_by}" if row.cancelled_at else "planned"
        table.add_row(
            str(row.id),
            _paris(row.start_at),
            _paris(row.end_at),
            row.reason,
            row.planned_by,
            status,
        )
    console.print(table)


@app.command()
def cancel(window_id: int = typer.Argument(..., help="The window's id (see `list`).")) -> None:
    """Cancel a planned window."""
    now = dt.datetime.now(dt.UTC)

    async def work(session: AsyncSession) -> MaintenanceWindow:
        return await maintenance.cancel(
            session=session, window_id=window_id, actor=actor(), now=now
        )

    window = run(work, expected=EXPECTED)
    console.print(f"window {window.id} cancelled")
