"""``ensu incidents``: security incidents through the phases of CGU §8 (R-OPS-2).

open → isolate (a téléservice, an organisation, the whole service) → export (the
journal of the period) / qualify → restrict (temporary restrictions) → check (the
closure checklist) → close (isolations and restrictions lifted); ``review`` counts them
by type. The rules are in :mod:`ensu.operations.incidents`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import keys
from ensu.audit.store import StoreError
from ensu.cli.consumers import DATE_FORMATS, actor, print_notices, run, run_with_sessionmaker
from ensu.config import get_settings
from ensu.operations import incidents, isolation
from ensu.operations.models import Incident, IncidentAction

app = typer.Typer(help="Security incidents (R-OPS-2).", no_args_is_help=True)
console = Console()
EXPECTED = (incidents.IncidentError, StoreError, keys.JournalKeyError)


def _utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    return f"{moment.replace(tzinfo=moment.tzinfo or dt.UTC):%Y-%m-%d %H:%M:%S}Z"


@app.command("open")
def open_(
    title: Annotated[str, typer.Option(help="What happened, in a line.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(incidents.KINDS)}.")],
    severity: Annotated[str, typer.Option(help=f"One of {', '.join(incidents.SEVERITIES)}.")],
    event: Annotated[
        list[int] | None, typer.Option("--event", help="A security event it comes from.")
    ] = None,
) -> None:
    """Open an incident; prints its id."""

    async def work(session: AsyncSession) -> Incident:
        return await incidents.open_incident(
            session=session,
            title=title,
            kind=kind,
            severity=severity,
            events=tuple(event or ()),
            actor=actor(),
        )

    incident = run(work, expected=EXPECTED)
    console.print(f"incident {incident.id} opened")


@app.command()
def isolate(
    incident_id: int,
    reason: Annotated[str, typer.Option(help="Why (journaled).")],
    teleservice: Annotated[str | None, typer.Option(help="Its ID_Teleservice.")] = None,
    organisation: Annotated[
        str | None, typer.Option(help="Its SIRET: all its téléservices.")
    ] = None,
    service: Annotated[bool, typer.Option("--service", help="The whole service (503).")] = False,
) -> None:
    """Cut a téléservice (suspended, tokens revoked: 403 910004), an organisation, or the
    whole service (503 930006); returns once every instance enforces it."""

    async def work(session: AsyncSession) -> incidents.Isolated:
        return await incidents.isolate(
            session=session,
            incident_id=incident_id,
            actor=actor(),
            reason=reason,
            teleservice=teleservice,
            organisation=organisation,
            whole_service=service,
        )

    done = run(work, expected=EXPECTED)
    time.sleep(isolation.PROPAGATION_SECONDS)  # every instance has seen it by now
    console.print(
        f"isolated: {', '.join(done.targets)} ({done.clients_cut} client(s): every token"
        " issued until now revoked); effective on every instance"
    )


@app.command()
def export(
    incident_id: int,
    teleservice: Annotated[str, typer.Option(help="Its ID_Teleservice.")],
    from_: Annotated[dt.datetime, typer.Option("--from", formats=DATE_FORMATS)],
    to: Annotated[dt.datetime, typer.Option("--to", formats=DATE_FORMATS, help="Exclusive.")],
) -> None:
    """Attach the journal of the period (a provable bundle, R-TR-3) to the incident."""
    settings = get_settings()

    async def work(session: AsyncSession) -> str:
        path = await incidents.export_journal(
            session=session,
            settings=settings,
            incident_id=incident_id,
            teleservice=teleservice,
            start=from_.replace(tzinfo=dt.UTC),
            end=to.replace(tzinfo=dt.UTC),
            actor=actor(),
        )
        return str(path)

    console.print(f"journal attached: {run(work, expected=EXPECTED)}")


@app.command()
def qualify(
    incident_id: int,
    qualification: Annotated[str | None, typer.Option(help="Perimeter and impact.")] = None,
    cause: Annotated[str | None, typer.Option(help="The cause (fait générateur).")] = None,
) -> None:
    """Record the qualification and the cause."""

    async def work(session: AsyncSession) -> Incident:
        return await incidents.qualify(
            session=session,
            incident_id=incident_id,
            qualification=qualification,
            cause=cause,
            actor=actor(),
        )

    console.print(f"incident {run(work, expected=EXPECTED).id} qualified")


@app.command()
def restrict(  # noqa: PLR0917 - typer options, passed by name by the CLI
    incident_id: int,
    teleservice: Annotated[str, typer.Option(help="Its ID_Teleservice.")],
    reason: Annotated[str, typer.Option(help="Why (journaled).")],
    quota: Annotated[int | None, typer.Option(help="A lower quota per minute.")] = None,
    code: Annotated[list[str] | None, typer.Option("--code", help="Keep only these codes.")] = None,
    period_start: Annotated[
        dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="A later start.")
    ] = None,
    period_end: Annotated[
        dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="An earlier end.")
    ] = None,
) -> None:
    """A temporary restriction (lower quota, narrower perimeter), lifted at closure."""

    async def work(session: AsyncSession) -> IncidentAction:
        return await incidents.restrict(
            session=session,
            incident_id=incident_id,
            teleservice=teleservice,
            actor=actor(),
            reason=reason,
            quota_per_minute=quota,
            codes=tuple(code) if code else None,
            period_start=period_start.date() if period_start else None,
            period_end=period_end.date() if period_end else None,
        )

    run(work, expected=EXPECTED)
    console.print(f"{teleservice} restricted until incident {incident_id} is closed")


@app.command()
def inform(
    incident_id: int,
    message: Annotated[str, typer.Option(help="What the consumers should know.")],
    teleservice: Annotated[
        list[str] | None,
        typer.Option("--teleservice", help="Default: those the incident isolated or restricted."),
    ] = None,
) -> None:
    """Write to the technical contact and the responsable de traitement (R-OPS-4)."""
    settings = get_settings()

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
        return await incidents.inform(
            settings=settings,
            sessionmaker=sessionmaker,
            incident_id=incident_id,
            actor=actor(),
            message=message,
            teleservices=tuple(teleservice or ()),
        )

    print_notices(run_with_sessionmaker(work, expected=EXPECTED))


@app.command()
def check(
    incident_id: int,
    item: Annotated[str, typer.Argument(help=f"One of {', '.join(incidents.CHECKLIST)}.")],
    note: Annotated[str, typer.Option(help="What was verified.")],
) -> None:
    """Tick an item of the closure checklist."""

    async def work(session: AsyncSession) -> Incident:
        return await incidents.check(
            session=session, incident_id=incident_id, item=item, note=note, actor=actor()
        )

    incident = run(work, expected=EXPECTED)
    left = [name for name in incidents.CHECKLIST if name not in incident.checklist]
    console.print(f"checked {item}; left: {', '.join(left) or 'none'}")


@app.command()
def close(incident_id: int) -> None:
    """Close once the checklist is complete, the cause recorded and the journal
    verified; lifts the incident's isolations and restrictions."""
    settings = get_settings()

    async def work(session: AsyncSession) -> list[str]:
        return await incidents.close(
            session=session, settings=settings, incident_id=incident_id, actor=actor()
        )

    lifted = run(work, expected=EXPECTED)
    time.sleep(isolation.PROPAGATION_SECONDS)
    console.print(f"incident {incident_id} closed; lifted: {', '.join(lifted) or 'nothing'}")


@app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False) -> None:
    """The open incidents (``--all``: every one)."""

    async def work(session: AsyncSession) -> list[Incident]:
        return await incidents.incidents(session=session, open_only=not all_)

    rows = run(work, expected=EXPECTED)
    table = Table(title=f"{len(rows)} incident(s)")
    for column in ("id", "opened", "type", "severity", "phase", "title"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id), _utc(row.opened_at), row.kind, row.severity, row.phase, row.title
        )
    console.print(table)


@app.command()
def show(incident_id: int) -> None:
    """An incident and everything done for it."""

    async def work(session: AsyncSession) -> tuple[Incident, list[IncidentAction]]:
        found = await session.get(Incident, incident_id)
        return found or Incident(), await incidents.actions(
            session=session, incident_id=incident_id
        )

    incident, done = run(work, expected=EXPECTED)
    console.print(f"incident {incident.id}: {incident.title}")
    console.print(f"type {incident.kind}, severity {incident.severity}, phase {incident.phase}")
    console.print(f"qualification: {incident.qualification or '-'}; cause: {incident.cause or '-'}")
    for item, label in incidents.CHECKLIST.items():
        console.print(f"  [{'x' if item in incident.checklist else ' '}] {item}: {label}")
    table = Table(title="actions")
    for column in ("at", "by", "action", "target", "details", "lifted"):
        table.add_column(column)
    for action in done:
        table.add_row(
            _utc(action.at),
            action.actor,
            action.action,
            action.target or "-",
            str(action.details)[:80],
            _utc(action.undone_at),
        )
    console.print(table)


@app.command()
def review(
    from_: Annotated[dt.datetime, typer.Option("--from", formats=DATE_FORMATS)],
    to: Annotated[dt.datetime, typer.Option("--to", formats=DATE_FORMATS, help="Exclusive.")],
) -> None:
    """The periodic review: incidents by type and severity, times to isolate and close."""

    async def work(session: AsyncSession) -> dict[str, object]:
        return await incidents.review(
            session=session, start=from_.replace(tzinfo=dt.UTC), end=to.replace(tzinfo=dt.UTC)
        )

    typer.echo(incidents.review_json(run(work, expected=EXPECTED)))
