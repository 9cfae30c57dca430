"""``ensu calendar``: the French working-day calendar of the terms' deadlines (R-SQ-4)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from ensu.compliance.calendar import add_working_days

app = typer.Typer(help="The French working-day calendar (public holidays).", no_args_is_help=True)


@app.command("add-working-days")
def add_working_days_(
    start: Annotated[dt.datetime, typer.Argument(formats=["%Y-%m-%d"], help="ISO date.")],
    count: Annotated[int, typer.Argument(help="Working days to add (negative: before).")],
    alsace_moselle: Annotated[
        bool, typer.Option("--alsace-moselle", help="With Good Friday and 26 December.")
    ] = False,
) -> None:
    """Print the ISO date COUNT working days after START (START itself not counted)."""
    typer.echo(add_working_days(start.date(), count, alsace_moselle=alsace_moselle).isoformat())
