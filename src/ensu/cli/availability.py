"""``ensu availability report``: the measured availability against 97.16 % (R-SQ-2).

The minutes are judged as :mod:`ensu.operations.availability` says: a planned window, a
5xx (other than 930001), a failed probe or a minute nobody observed make it unavailable.
"""

from __future__ import annotations

import datetime as dt

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.cli.consumers import errors, run
from ensu.operations import availability

app = typer.Typer(help="Measured availability (R-SQ-2).", no_args_is_help=True)
console = Console()


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.3f} %"


def _verdict(tally: availability.Tally) -> str:
    met = tally.meets_target
    return "—" if met is None else ("meets" if met else "BELOW")


@app.command()
def report(
    start: str = typer.Option(..., "--from", help="First day, YYYY-MM-DD (Paris)."),
    end: str = typer.Option(..., "--to", help="Last day, YYYY-MM-DD (Paris), included."),
    as_json: bool = typer.Option(False, "--json", help="The report as JSON."),
) -> None:
    """Per day and overall: available minutes over all minutes (planned windows counted
    as unavailable), and over the coverage range 07:00-20:00, against 97.16 %."""
    first, last = _date(start), _date(end)
    if last < first:
        errors.print("[red]error:[/red] --to is before --from")
        raise typer.Exit(1)

    async def work(session: AsyncSession) -> availability.Report:
        return await availability.report(session=session, start=first, end=last)

    found = run(work, expected=())
    if as_json:
        typer.echo(orjson.dumps(found.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    target = f"{availability.TARGET * 100:.2f} %"
    table = Table(title=f"Availability {first} → {last} (Europe/Paris), target {target}")
    for column in (
        "day",
        "minutes",
        "available",
        "planned",
        "failed",
        "unobserved",
        "availability",
        "target",
        "07:00-20:00",
        "target",
    ):
        table.add_column(column)
    rows = [(d.day.isoformat(), d.all, d.coverage) for d in found.days]
    rows.append(("overall", found.all, found.coverage))
    for label, tally, coverage in rows:
        table.add_row(
            label,
            str(tally.minutes),
            str(tally.available),
            str(tally.planned),
            str(tally.failed),
            str(tally.unobserved),
            _percent(tally.ratio),
            _verdict(tally),
            _percent(coverage.ratio),
            _verdict(coverage),
        )
    console.print(table)
    console.print(
        f"overall: {_percent(found.all.ratio)} ({_verdict(found.all)} {target});"
        f" coverage range 07:00-20:00: {_percent(found.coverage.ratio)}"
    )
