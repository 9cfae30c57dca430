"""``ensu webhooks``: subscriptions, their deliveries' attempts, replays.

How deliveries are signed, retried and disabled: :mod:`ensu.webhooks.service`. The
server sends what is due every second; ``deliver`` does it once (without a server).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.cli.consumers import actor, run, run_with_sessionmaker
from ensu.config import get_settings
from ensu.webhooks import service as webhooks

app = typer.Typer(help="Webhooks: signed JSON deliveries of events.", no_args_is_help=True)
console = Console()
EXPECTED = (webhooks.WebhookError,)
T = TypeVar("T")


def _paris(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}Z"


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="The receiver (https://).")],
    event: Annotated[
        list[str], typer.Option("--event", help="An event type or pattern (security.*); repeat.")
    ],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    secret: Annotated[
        str | None, typer.Option(help="The shared secret; default: a new one, shown once.")
    ] = None,
) -> None:
    """Subscribe URL to events; prints the secret the receiver checks signatures with."""
    settings = get_settings()

    async def work(session: AsyncSession) -> tuple[webhooks.Subscription, str]:
        return await webhooks.add(
            session=session,
            settings=settings,
            url=url,
            event_types=event,
            description=description,
            secret=secret,
            actor=actor(),
        )

    subscription, shared = run(work, expected=EXPECTED)
    console.print(f"subscription {subscription.id}: {url} ← {', '.join(subscription.event_types)}")
    typer.echo(f"secret: {shared}")


@app.command("list")
def list_() -> None:
    """The subscriptions."""

    async def work(session: AsyncSession) -> list[webhooks.Subscription]:
        return await webhooks.subscriptions(session=session)

    rows = run(work, expected=EXPECTED)
    table = Table(title=f"{len(rows)} webhook subscription(s)")
    for column in ("id", "url", "events", "state", "failures in a row", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            row.url,
            ", ".join(row.event_types),
            "active" if row.active else "disabled",
            str(row.consecutive_failures),
            row.description,
        )
    console.print(table)


def _toggle(subscription_id: int, *, active: bool) -> None:
    async def work(session: AsyncSession) -> webhooks.Subscription:
        return await webhooks.set_active(
            session=session, subscription_id=subscription_id, active=active, actor=actor()
        )

    row = run(work, expected=EXPECTED)
    console.print(f"subscription {row.id} {'enabled' if row.active else 'disabled'}")


@app.command()
def enable(subscription_id: int) -> None:
    """Turn a subscription back on (its pending deliveries resume)."""
    _toggle(subscription_id, active=True)


@app.command()
def disable(subscription_id: int) -> None:
    """Turn a subscription off."""
    _toggle(subscription_id, active=False)


@app.command()
def attempts(
    subscription: Annotated[int | None, typer.Option(help="Of this subscription only.")] = None,
    delivery: Annotated[str | None, typer.Option(help="Of this delivery only.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The latest delivery attempts, newest first."""

    async def work(session: AsyncSession) -> list[webhooks.Attempt]:
        return await webhooks.attempts(
            session=session, subscription_id=subscription, delivery=delivery, limit=limit
        )

    rows = run(work, expected=EXPECTED)
    table = Table(title=f"{len(rows)} attempt(s)")
    for column in ("at", "delivery", "sub.", "event", "trigger", "HTTP", "ms", "result", "now"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            _paris(row.at),
            row.delivery,
            str(row.subscription_id),
            row.event_type,
            row.trigger,
            str(row.status_code or "-"),
            str(row.duration_ms),
            "ok" if row.ok else (row.error or "failed"),
            row.delivery_status,
        )
    console.print(table)


@app.command()
def replay(delivery: Annotated[str, typer.Argument(help="The delivery's id (uuid).")]) -> None:
    """Send a delivery again now (same body and id, fresh timestamp and signature)."""
    settings = get_settings()

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> webhooks.Attempt:
        return await webhooks.replay(
            sessionmaker=sessionmaker, settings=settings, delivery=delivery, actor=actor()
        )

    attempt = run_with_sessionmaker(work, expected=EXPECTED)
    outcome = "delivered" if attempt.ok else f"failed ({attempt.error})"
    console.print(f"delivery {attempt.delivery}: {outcome}")
    if not attempt.ok:
        raise typer.Exit(1)


@app.command()
def deliver() -> None:
    """Send the deliveries that are due, once (the server does it every second)."""
    settings = get_settings()

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        return await webhooks.deliver_due(sessionmaker=sessionmaker, settings=settings)

    console.print(f"{run_with_sessionmaker(work, expected=EXPECTED)} attempt(s) made")
