"""``ensu backup``: make, list, check and restore backups (R-SQ-3).

What a backup holds and why its copy is consistent while the server runs:
:mod:`ensu.operations.backup`. ``deploy/backup.cron`` runs ``ensu backup create
--prune`` every six hours (at most 6 hours of data lost, the terms allow 24) and
``ensu backup check`` alerts when the newest backup is older than a day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from ensu.audit import keys
from ensu.audit.store import StoreError
from ensu.cli.consumers import actor
from ensu.config import get_settings
from ensu.operations import backup

app = typer.Typer(help="Backups: create, list, check, restore (R-SQ-3).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


def _run(work: Awaitable[T]) -> T:
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except backup.RestoreRefused as exc:
        errors.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None
    except (backup.BackupError, SQLAlchemyError, OSError, StoreError, keys.JournalKeyError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _size(count: int) -> str:
    return f"{count / 1_048_576:.1f} MiB"


@app.command()
def create(
    prune: Annotated[
        bool, typer.Option("--prune", help="Then keep only the ENSU_BACKUP_KEEP newest.")
    ] = False,
) -> None:
    """Back up the database (SQLite backup API or pg_dump), the journal, the quota file,
    the blobs, the keys and the PKI; the backup's path is the last line."""
    settings = get_settings()
    info = _run(backup.create(settings=settings, actor=actor(), now=dt.datetime.now(dt.UTC)))
    console.print(
        f"backup {info.id}: {info.files} files, {_size(info.bytes)}, journal checkpoint at"
        f" size {info.journal_size}"
    )
    if prune:
        for removed in backup.prune(settings=settings, keep=settings.backup_keep):
            console.print(f"pruned {removed}")
    typer.echo(str(info.path))


@app.command("list")
def list_() -> None:
    """The backups under ENSU_BACKUP_DIR, oldest first."""
    rows = backup.list_backups(settings=get_settings())
    table = Table(title=f"{len(rows)} backup(s) in {get_settings().backup_dir_path}")
    for column in ("id", "created (UTC)", "database", "files", "size", "journal"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.id,
            f"{row.created_at:%Y-%m-%d %H:%M:%S}",
            row.database,
            str(row.files),
            _size(row.bytes),
            str(row.journal_size),
        )
    console.print(table)


@app.command()
def check(
    path_or_id: Annotated[
        str | None, typer.Argument(help="A backup; default: the newest one.")
    ] = None,
    max_age_hours: Annotated[
        float, typer.Option("--max-age-hours", help="Older than this is an error.")
    ] = 24.0,
) -> None:
    """Verify a backup's checksums and checkpoint; with no argument, also that the newest
    backup is younger than ``--max-age-hours`` (at most 24 hours lost, R-SQ-3)."""
    settings = get_settings()
    if path_or_id is None:
        found = backup.list_backups(settings=settings)
        if not found:
            errors.print(f"[red]error:[/red] no backup in {settings.backup_dir_path}")
            raise typer.Exit(1)
        newest = found[-1]
        age = dt.datetime.now(dt.UTC) - newest.created_at
        if age > dt.timedelta(hours=max_age_hours):
            errors.print(
                f"[red]error:[/red] the newest backup, {newest.id}, is"
                f" {age.total_seconds() / 3600:.1f} hours old (at most {max_age_hours})"
            )
            raise typer.Exit(1)
        path_or_id = str(newest.path)
    try:
        folder = backup.resolve(settings=settings, path_or_id=path_or_id)
        manifest = backup.verify_backup(folder)
    except backup.BackupError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"[green]backup verified[/green]: {manifest['id']}, {len(manifest['files'])} files,"
        f" journal checkpoint at size {manifest['checkpoint']['size']}"
    )


@app.command()
def restore(
    path_or_id: Annotated[str, typer.Argument(help="The backup's directory or its id.")],
) -> None:
    """Restore a backup into an empty (or destroyed) var directory and, on PostgreSQL,
    an empty database, the server stopped; refuses a backup that does not verify."""
    settings = get_settings()
    info = _run(backup.restore(settings=settings, path_or_id=path_or_id, actor=actor()))
    console.print(
        f"restored {info.id} ({info.files} files) into {settings.var_dir}; the journal"
        f" verifies (checkpoint at size {info.journal_size}). Start the server."
    )
