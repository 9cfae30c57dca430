"""``ensu habilitations``: the operators' view of habilitation requests (R-HAB-1 to R-HAB-4).

The operator acts as the system actor (``cli:USER``): a manager's rights on the staff's
actions (ask for changes, refuse, validate, revoke), none on the applicant's; every
action is in the request's timeline and the journal under that name. ``validate``
commits the validation (and the téléservice it provisions), then mails the means of
access to the technical contact (``ENSU_SMTP_*``); ``notify`` mails them again.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.accounts.principal import Actor
from ensu.cli.consumers import actor as shell_user
from ensu.cli.consumers import console, errors, run
from ensu.config import Environment, get_settings
from ensu.habilitations import service as habilitations
from ensu.habilitations.errors import HabilitationError
from ensu.habilitations.schemas import (
    Decision,
    HabilitationView,
    Notice,
    RequestView,
    TimelineEntry,
)
from ensu.habilitations.workflow import State

app = typer.Typer(
    help="Habilitation requests: the queue, a request, its timeline, the decisions.",
    no_args_is_help=True,
)
EXPECTED = (HabilitationError,)
RequestId = Annotated[int, typer.Argument(help="The request's number.")]


def operator() -> Actor:
    return Actor.system(shell_user())


@app.command("list")
def list_(
    state: Annotated[State | None, typer.Option(help="Only this state.")] = None,
    stage: Annotated[Environment | None, typer.Option(help="sandbox or production.")] = None,
    siret: Annotated[str | None, typer.Option(help="Only this organisation.")] = None,
) -> None:
    """The requests, newest first (the instructors' queue: --state submitted)."""

    async def work(session: AsyncSession) -> list[RequestView]:
        return await habilitations.list_requests(
            session=session, actor=operator(), state=state, stage=stage, siret=siret
        )

    views = run(work, expected=EXPECTED)
    table = Table(title=f"{len(views)} demande(s)")
    for column in ("n°", "stage", "state", "SIRET", "organisation", "intitulé", "updated"):
        table.add_column(column, overflow="fold")
    for view in views:
        table.add_row(
            str(view.id),
            view.stage.value,
            view.state,
            view.organisation_siret,
            view.organisation_name,
            str(view.data.get("informations", {}).get("intitule", "")),
            view.updated_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@app.command()
def show(
    request_id: RequestId,
    as_json: Annotated[bool, typer.Option("--json", help="The whole request as JSON.")] = False,
) -> None:
    """One request: state, blocks, attachments, what may be done now."""

    async def work(session: AsyncSession) -> RequestView:
        return await habilitations.get_request(
            session=session, actor=operator(), request_id=request_id
        )

    view = run(work, expected=EXPECTED)
    if as_json:
        typer.echo(json.dumps(_json(view), ensure_ascii=False, indent=2, default=str))
        return
    console.print(f"[bold]Demande n° {view.id}[/bold] ({view.stage.value}) : {view.state_label}")
    console.print(f"organisation    {view.organisation_name} ({view.organisation_siret})")
    console.print(f"ID_Teleservice  {view.id_teleservice or '—'}")
    if view.previous_stage_id:
        console.print(f"bac à sable     demande n° {view.previous_stage_id}")
    if view.missing_blocks:
        console.print(f"blocs à remplir {', '.join(view.missing_blocks)}")
    for key, values in view.data.items():
        console.print(f"[bold]{key}[/bold] {json.dumps(values, ensure_ascii=False)}")
    for attachment in view.attachments:
        console.print(
            f"pièce jointe    {attachment.kind} {attachment.filename} "
            f"{attachment.size} o sha256={attachment.sha256}"
        )
    console.print("actions         " + (", ".join(a.action for a in view.actions) or "aucune"))


def _json(view: RequestView) -> dict[str, object]:
    return {
        "id": view.id,
        "stage": view.stage.value,
        "state": view.state,
        "organisation": {"siret": view.organisation_siret, "name": view.organisation_name},
        "id_teleservice": view.id_teleservice,
        "data": view.data,
        "missing_blocks": list(view.missing_blocks),
        "attachments": [dataclasses.asdict(a) for a in view.attachments],
        "actions": [a.action for a in view.actions],
    }


@app.command()
def timeline(request_id: RequestId) -> None:
    """The request's events and messages, oldest first (R-HAB-2)."""

    async def work(session: AsyncSession) -> list[TimelineEntry]:
        return await habilitations.timeline(
            session=session, actor=operator(), request_id=request_id
        )

    table = Table(title=f"Demande n° {request_id}")
    for column in ("when", "who", "what", "reason / message"):
        table.add_column(column, overflow="fold")
    for entry in run(work, expected=EXPECTED):
        if entry.kind == "message":
            what, text = "message", entry.body or ""
        else:
            moved = f" {entry.from_state} → {entry.to_state}" if entry.from_state else ""
            what = f"{entry.action}{moved}"
            text = " / ".join(t for t in (entry.reason, entry.legal_analysis) if t)
        table.add_row(entry.at.isoformat(timespec="seconds"), entry.actor_label, what, text)
    console.print(table)


@app.command("request-changes")
def request_changes(
    request_id: RequestId,
    reason: Annotated[str, typer.Option(help="What the applicant must change.")],
) -> None:
    """Send a submitted request back to its applicant, with the reason."""

    async def work(session: AsyncSession) -> RequestView:
        return await habilitations.request_changes(
            session=session, actor=operator(), request_id=request_id, reason=reason
        )

    console.print(f"Demande n° {request_id} : {run(work, expected=EXPECTED).state_label}")


@app.command()
def refuse(
    request_id: RequestId,
    reason: Annotated[str, typer.Option(help="Why, for the applicant.")],
    analysis: Annotated[str, typer.Option(help="The producer's legal analysis.")],
) -> None:
    """Refuse a submitted request (reason and legal analysis required)."""

    async def work(session: AsyncSession) -> RequestView:
        return await habilitations.refuse(
            session=session,
            actor=operator(),
            request_id=request_id,
            reason=reason,
            legal_analysis=analysis,
        )

    console.print(f"Demande n° {request_id} : {run(work, expected=EXPECTED).state_label}")


@app.command()
def validate(
    request_id: RequestId,
    analysis: Annotated[str, typer.Option(help="The producer's legal analysis.")],
) -> None:
    """Validate a submitted request: provisions the stage's téléservice and mails the
    technical contact its means of access."""
    settings = get_settings()

    async def work(session: AsyncSession) -> Decision:
        return await habilitations.validate(
            session=session,
            settings=settings,
            actor=operator(),
            request_id=request_id,
            legal_analysis=analysis,
        )

    decision = run(work, expected=EXPECTED)
    snapshot = decision.habilitation
    console.print(f"Demande n° {request_id} validée : habilitation n° {snapshot.id}")
    console.print(f"ID_Teleservice  {snapshot.id_teleservice}")
    console.print(f"client_id       {snapshot.client_id}")
    if snapshot.secret_pending:
        console.print("client_secret   à lire une seule fois par le demandeur, sur le portail")
    _deliver(decision.notice)


def _deliver(notice: Notice) -> None:
    settings = get_settings()

    async def work(session: AsyncSession) -> bool:
        sent = await habilitations.deliver_notice(
            session=session, settings=settings, notice=notice, actor=operator()
        )
        return sent is not None

    if run(work, expected=EXPECTED):
        console.print(f"courriel envoyé à {', '.join(notice.to)}")
    else:
        errors.print(
            "[yellow]le courriel n'a pas pu être envoyé (voir le journal) :[/yellow] "
            f"`ensu habilitations notify {notice.request_id}` pour le renvoyer"
        )
        raise typer.Exit(1)


@app.command()
def notify(request_id: RequestId) -> None:
    """Mail the means of access of the request's active habilitation again."""
    settings = get_settings()

    async def work(session: AsyncSession) -> Notice:
        return await habilitations.current_notice(
            session=session, settings=settings, actor=operator(), request_id=request_id
        )

    _deliver(run(work, expected=EXPECTED))


@app.command()
def revoke(
    request_id: RequestId,
    reason: Annotated[str, typer.Option(help="Why (end of the legal basis, security…).")],
) -> None:
    """Revoke the request's habilitation; its téléservice is revoked at once."""

    async def work(session: AsyncSession) -> RequestView:
        return await habilitations.revoke(
            session=session, actor=operator(), request_id=request_id, reason=reason
        )

    console.print(f"Demande n° {request_id} : {run(work, expected=EXPECTED).state_label}")


@app.command()
def granted(
    request_id: Annotated[int | None, typer.Argument(help="Only this request's.")] = None,
) -> None:
    """The habilitations (snapshots of validations): active, obsolete, revoked."""

    async def work(session: AsyncSession) -> list[HabilitationView]:
        return await habilitations.list_habilitations(
            session=session, actor=operator(), request_id=request_id
        )

    table = Table(title="Habilitations")
    for column in ("n°", "request", "stage", "status", "ID_Teleservice", "validated", "by"):
        table.add_column(column, overflow="fold")
    for view in run(work, expected=EXPECTED):
        table.add_row(
            str(view.id),
            str(view.request_id),
            view.stage.value,
            view.status,
            view.id_teleservice,
            view.validated_at.isoformat(timespec="seconds"),
            view.validated_by,
        )
    console.print(table)
