"""``ensu db``: migrations."""

from __future__ import annotations

import typer

from ensu import db
from ensu.config import get_settings

app = typer.Typer(help="Database migrations.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the migrations up to REVISION (default: head)."""
    db.upgrade(get_settings().database_url, revision)


@app.command()
def check() -> None:
    """Fail if the models and the migrations disagree."""
    db.check(get_settings().database_url)
    typer.echo("models and migrations agree")


@app.command()
def revision(message: str = typer.Option(..., "-m", "--message")) -> None:
    """Autogenerate a migration from the models (developers only)."""
    db.revision(get_settings().database_url, message)
