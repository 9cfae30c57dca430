"""``ensu breaches``: the register of personal-data breaches (R-OPS-3, CGU §6.6).

The 72 hours to the CNIL run from the discovery; ``ensu serve`` alerts at 24 h and 6 h
left and once overdue (``remind`` does it once, for cron). The rules are in
:mod:`ensu.operations.breaches`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.cli.consumers import actor, errors, print_notices, run, run_with_sessionmaker
from ensu.config import get_settings
from ensu.operations import breaches
from ensu.operations.maintenance import WindowRefused, parse_moment, utc
from ensu.operations.models import Breach

app = typer.Typer(help="Personal-data breaches: the register (R-OPS-3).", no_args_is_help=True)
console = Console()
EXPECTED = (breaches.BreachError,)
T = TypeVar("T")


def _moment(text: str) -> dt.datetime:
    try:
        return parse_moment(text)
    except WindowRefused as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command("record")
def record_(  # noqa: PLR0917 - typer options, passed by name by the CLI
    title: Annotated[str, typer.Option(help="What happened, in a line.")],
    description: Annotated[str, typer.Option(help="Facts, data and persons concerned.")],
    discovered: Annotated[
        str, typer.Option(help="When it became known (ISO 8601; without offset: Paris).")
    ],
    nature: Annotated[
        list[str], typer.Option(help="confidentiality, integrity, availability; repeat.")
    ],
    risk: Annotated[str, typer.Option(help="unlikely, risk or high.")],
    teleservice: Annotated[
        list[str] | None, typer.Option("--teleservice", help="A téléservice concerned.")
    ] = None,
    measures: Annotated[str | None, typer.Option(help="Measures taken or planned.")] = None,
    incident: Annotated[int | None, typer.Option(help="The incident it comes from.")] = None,
) -> None:
    """Enter a breach; prints its id and its CNIL deadline (72 h after discovery)."""
    discovered_at = _moment(discovered)

    async def work(session: AsyncSession) -> Breach:
        return await breaches.record(
            session=session,
            title=title,
            description=description,
            discovered_at=discovered_at,
            nature=tuple(nature),
            risk=risk,
            teleservices=tuple(teleservice or ()),
            measures=measures,
            incident_id=incident,
            actor=actor(),
        )

    breach = run(work, expected=EXPECTED)
    due = breaches.deadline(breach)
    notice = "to notify the CNIL by" if breaches.must_notify(breach) else "not notified; deadline"
    console.print(f"breach {breach.id} recorded; {notice} {due:%Y-%m-%d %H:%M} UTC")


@app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False) -> None:
    """The register, with each breach's CNIL deadline and state."""

    async def work(session: AsyncSession) -> list[Breach]:
        return await breaches.register(session=session, open_only=not all_)

    now = dt.datetime.now(dt.UTC)
    rows = run(work, expected=EXPECTED)
    table = Table(title=f"{len(rows)} breach(es)")
    for column in ("id", "discovered (UTC)", "risk", "CNIL deadline", "CNIL", "informed", "title"):
        table.add_column(column)
    for row in rows:
        cnil = (
            f"notified {row.cnil_reference}"
            if row.cnil_notified_at
            else ("not required" if row.risk == "unlikely" else breaches.left(row, now))
        )
        table.add_row(
            str(row.id),
            f"{utc(row.discovered_at):%Y-%m-%d %H:%M}",
            row.risk,
            f"{breaches.deadline(row):%Y-%m-%d %H:%M}",
            cnil,
            str(sum(1 for notice in row.notices if notice.get("outcome") == "sent")),
            row.title,
        )
    console.print(table)
    late = [row.id for row in rows if breaches.must_notify(row) and breaches.deadline(row) < now]
    if late:
        errors.print(f"[red]overdue:[/red] breach(es) {late} not notified within 72 hours")
        raise typer.Exit(1)


@app.command("notify-cnil")
def notify_cnil(
    breach_id: int,
    reference: Annotated[str, typer.Option(help="The CNIL's reference of the notification.")],
    at: Annotated[str | None, typer.Option(help="When it was made (default: now).")] = None,
) -> None:
    """Record the notification to the CNIL."""
    moment = _moment(at) if at else None

    async def work(session: AsyncSession) -> Breach:
        return await breaches.notify_cnil(
            session=session, breach_id=breach_id, reference=reference, actor=actor(), at=moment
        )

    breach = run(work, expected=EXPECTED)
    assert breach.cnil_notified_at is not None
    late = utc(breach.cnil_notified_at) > breaches.deadline(breach)
    console.print(f"breach {breach.id}: CNIL notified{' (LATE)' if late else ''}")


@app.command()
def inform(
    breach_id: int,
    message: Annotated[str, typer.Option(help="What the other controllers should know.")] = "",
) -> None:
    """Write to the responsables de traitement and DPOs of the téléservices concerned."""
    settings = get_settings()

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
        return await breaches.inform_controllers(
            settings=settings,
            sessionmaker=sessionmaker,
            breach_id=breach_id,
            actor=actor(),
            message=message,
        )

    print_notices(run_with_sessionmaker(work, expected=EXPECTED))


@app.command()
def remind() -> None:
    """Send the deadline alerts that are due (the server does it every minute)."""
    settings = get_settings()

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[int, str]]:
        return await breaches.remind(settings=settings, sessionmaker=sessionmaker)

    for breach_id, alert in run_with_sessionmaker(work, expected=EXPECTED):
        console.print(f"breach {breach_id}: {alert} alert sent")


@app.command()
def close(breach_id: int) -> None:
    """Close a breach (once notified, or documented as unlikely to be a risk)."""

    async def work(session: AsyncSession) -> Breach:
        return await breaches.close(session=session, breach_id=breach_id, actor=actor())

    console.print(f"breach {run(work, expected=EXPECTED).id} closed")
