"""``ensu keys``: the authorization server's signing keys (R-GW-4)."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.cli.consumers import actor, run
from ensu.config import get_settings
from ensu.oauth import keys
from ensu.oauth.models import SigningKey

app = typer.Typer(help="Token signing keys: rotation and listing.", no_args_is_help=True)
console = Console()


@app.command()
def rotate() -> None:
    """Make a new current signing key; previous keys stay published until their tokens
    expire (the longest token lifetime plus the leeway), then disappear."""
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)

    async def work(session: AsyncSession) -> keys.ActiveKey:
        await keys.current(session=session, secret_key=settings.secret_key, now=now)
        return await keys.rotate(
            session=session, secret_key=settings.secret_key, now=now, actor=actor()
        )

    active = run(work, expected=(keys.KeyDecryptionError,))
    retire = (now + keys.RETENTION).isoformat(timespec="seconds")
    console.print(f"current key: {active.kid}")
    console.print(f"previous keys stay published until {retire}")


@app.command("list")
def list_() -> None:
    """List the signing keys: current, published (rotated, still trusted) or retired."""
    now = dt.datetime.now(dt.UTC)

    async def work(session: AsyncSession) -> list[SigningKey]:
        return await keys.all_keys(session=session)

    rows = run(work)
    table = Table(title=f"{len(rows)} signing key(s)")
    for column in ("kid", "alg", "created", "retire after", "status"):
        table.add_column(column)
    for row in rows:
        retire = row.retire_after.isoformat(timespec="seconds") if row.retire_after else "—"
        table.add_row(
            row.kid,
            row.alg,
            row.created_at.isoformat(timespec="seconds"),
            retire,
            keys.status(row, now),
        )
    console.print(table)
