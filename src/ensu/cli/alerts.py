"""``ensu alerts``: the security events and the test of the alert circuit (R-OPS-1).

The rules and the circuit (stored event, journal, signed webhook ``security.event``,
e-mail to ``ENSU_ALERT_EMAILS``) are in :mod:`ensu.operations.detection`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.cli.consumers import actor, run, run_with_sessionmaker
from ensu.config import get_settings
from ensu.operations import detection
from ensu.operations.models import SecurityEvent
from ensu.webhooks import service as webhooks

app = typer.Typer(help="Security events and their alerts (R-OPS-1).", no_args_is_help=True)
console = Console()


@app.command("list")
def list_(
    hours: Annotated[float, typer.Option(help="Of the last hours.")] = 24 * 7,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
) -> None:
    """The security events raised, newest first."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)

    async def work(session: AsyncSession) -> list[SecurityEvent]:
        return await detection.events(session=session, since=since, limit=limit)

    rows = run(work)
    table = Table(title=f"{len(rows)} security event(s)")
    for column in ("id", "detected (UTC)", "rule", "subject", "summary", "incident", "alerts"):
        table.add_column(column)
    for row in rows:
        alerts = row.alerts
        sent = alerts.get("webhooks")
        count = len(sent) if isinstance(sent, list) else 0
        table.add_row(
            str(row.id),
            f"{row.detected_at:%Y-%m-%d %H:%M:%S}",
            row.rule,
            row.subject,
            row.summary,
            str(row.incident_id or "-"),
            f"mail {alerts.get('mail', '-')}, webhooks {count}",
        )
    console.print(table)


@app.command()
def test() -> None:
    """Send a test event through the whole circuit (stored, journaled, signed webhook,
    e-mail); exit status 1 when no channel delivered it."""
    settings = get_settings()

    async def work(
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> tuple[SecurityEvent, list[webhooks.Attempt], str]:
        return await detection.test_circuit(
            settings=settings, sessionmaker=sessionmaker, actor=actor()
        )

    event, attempts, mailed = run_with_sessionmaker(work, expected=())
    console.print(f"security event {event.id} (test) stored and journaled")
    for attempt in attempts:
        outcome = "delivered" if attempt.ok else f"failed ({attempt.error})"
        console.print(
            f"webhook {attempt.delivery} (subscription {attempt.subscription_id}): {outcome}"
        )
    if not attempts:
        console.print("webhook: no active subscription to security.event")
    console.print(f"mail: {mailed}")
    if mailed != "sent" and not any(attempt.ok for attempt in attempts):
        raise typer.Exit(1)
