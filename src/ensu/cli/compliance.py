"""``ensu compliance``: the terms' commitments, risks, resiliations, versions, changes,
notices and deadlines (CGU §3.4, §9.3, §13, §14; R-SEC-1 to R-SEC-4, R-SQ-4 to R-SQ-6).

What the portal will do for staff and consumers, an operator does here; the rules are in
:mod:`ensu.compliance.service`, the dates are enforced by ``ensu jobs``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.accounts.principal import Actor
from ensu.cli.consumers import actor as shell_user
from ensu.cli.consumers import run
from ensu.compliance import service as compliance
from ensu.compliance.models import CommitmentKind, Party
from ensu.config import Environment, get_settings
from ensu.consumers.errors import ConsumerError

app = typer.Typer(help="The compliance clock's records.", no_args_is_help=True)
commitment = typer.Typer(help="Security commitments (R-SEC-1 to R-SEC-3).", no_args_is_help=True)
risk = typer.Typer(help="Critical risks (R-SEC-4).", no_args_is_help=True)
resiliation = typer.Typer(help="Ending an exchange (R-SQ-5).", no_args_is_help=True)
terms = typer.Typer(help="Versioned terms of use (R-SQ-6).", no_args_is_help=True)
change = typer.Typer(help="Production changes announced ahead (R-SQ-4).", no_args_is_help=True)
app.add_typer(commitment, name="commitment")
app.add_typer(risk, name="risk")
app.add_typer(resiliation, name="resiliation")
app.add_typer(terms, name="terms")
app.add_typer(change, name="change")
console = Console()
EXPECTED = (compliance.ComplianceError, ConsumerError)
DATE = ["%Y-%m-%d"]
DateArg = Annotated[dt.datetime, typer.Option(formats=DATE, help="ISO date.")]


def _actor() -> Actor:
    return Actor.system(shell_user())


# -- commitments -------------------------------------------------------------------------


@commitment.command("set")
def commitment_set(
    id_teleservice: Annotated[str, typer.Argument(help="ID_Teleservice (production).")],
    *,
    kind: Annotated[CommitmentKind, typer.Option(help="homologation or questionnaire.")],
    date: Annotated[
        dt.datetime,
        typer.Option(
            formats=DATE, help="Homologation: its end of validity; questionnaire: its date."
        ),
    ],
    reservations: Annotated[str | None, typer.Option(help="Reservations recorded.")] = None,
    provisional: Annotated[bool, typer.Option(help="Provisional authorisation (APE).")] = False,
    reference: Annotated[str | None, typer.Option(help="The document's reference.")] = None,
    submitted: Annotated[
        bool, typer.Option(help="Record it as submitted, to validate later.")
    ] = False,
) -> None:
    """Record a security commitment; validated at once unless --submitted."""

    async def work(session: AsyncSession) -> compliance.CommitmentView:
        return await compliance.record_commitment(
            session=session,
            id_teleservice=id_teleservice,
            kind=kind,
            reference_date=date.date(),
            reservations=reservations,
            provisional=provisional,
            document_reference=reference,
            validated=not submitted,
            actor=_actor(),
        )

    view = run(work, expected=EXPECTED)
    console.print(
        f"commitment {view.id} ({view.kind.value}, {view.status.value}):"
        f" next one due by {view.deadline.isoformat()}"
    )


@commitment.command("validate")
def commitment_validate(commitment_id: int) -> None:
    """Validate a submitted attestation (restores a téléservice the clock suspended)."""

    async def work(session: AsyncSession) -> compliance.CommitmentView:
        return await compliance.validate_commitment(
            session=session, commitment_id=commitment_id, actor=_actor()
        )

    view = run(work, expected=EXPECTED)
    console.print(f"commitment {view.id} validated: next one due by {view.deadline.isoformat()}")


@commitment.command("reject")
def commitment_reject(
    commitment_id: int, reason: Annotated[str, typer.Option(help="Why.")]
) -> None:
    """Refuse a submitted attestation."""

    async def work(session: AsyncSession) -> compliance.CommitmentView:
        return await compliance.reject_commitment(
            session=session, commitment_id=commitment_id, reason=reason, actor=_actor()
        )

    console.print(f"commitment {run(work, expected=EXPECTED).id} rejected")


@commitment.command("list")
def commitment_list(id_teleservice: Annotated[str | None, typer.Argument()] = None) -> None:
    """The commitments (of one téléservice)."""

    async def work(session: AsyncSession) -> list[compliance.CommitmentView]:
        return await compliance.commitments(session=session, id_teleservice=id_teleservice)

    table = Table(title="security commitments")
    for column in ("id", "téléservice", "kind", "date", "deadline", "status"):
        table.add_column(column)
    for view in run(work, expected=EXPECTED):
        table.add_row(
            str(view.id),
            view.id_teleservice,
            view.kind.value,
            view.reference_date.isoformat(),
            view.deadline.isoformat(),
            view.status.value,
        )
    console.print(table)


# -- risks -------------------------------------------------------------------------------


@risk.command("record")
def risk_record(
    id_teleservice: str,
    description: Annotated[str, typer.Option(help="The risk, as the consumer will read it.")],
    deadline: Annotated[
        dt.datetime | None, typer.Option(formats=DATE, help="Resolution deadline.")
    ] = None,
    cut: Annotated[bool, typer.Option("--cut", help="Cut at once (no deadline).")] = False,
) -> None:
    """A critical risk: a resolution deadline (--deadline) or a cut at once (--cut)."""
    if (deadline is None) == (not cut):
        console.print("give exactly one of --deadline and --cut")
        raise typer.Exit(2)

    async def work(session: AsyncSession) -> compliance.RiskView:
        return await compliance.record_risk(
            session=session,
            id_teleservice=id_teleservice,
            description=description,
            resolution_deadline=deadline.date() if deadline else None,
            actor=_actor(),
        )

    view = run(work, expected=EXPECTED)
    what = f"to resolve by {deadline.date().isoformat()}" if deadline else "téléservice cut"
    console.print(f"risk {view.id} recorded: {what}")


@risk.command("resolve")
def risk_resolve(risk_id: int) -> None:
    """The risk is resolved (restores a téléservice cut for it)."""

    async def work(session: AsyncSession) -> compliance.RiskView:
        return await compliance.resolve_risk(session=session, risk_id=risk_id, actor=_actor())

    console.print(f"risk {run(work, expected=EXPECTED).id} resolved")


# -- resiliations ------------------------------------------------------------------------


@resiliation.command("request")
def resiliation_request(
    id_teleservice: str,
    party: Annotated[Party, typer.Option(help="Who ends the exchange.")],
    reason: Annotated[str, typer.Option(help="The reasons (CGU §14).")],
    effective: Annotated[
        dt.datetime | None,
        typer.Option(formats=DATE, help="Effective date (default: in two months)."),
    ] = None,
    security: Annotated[
        bool, typer.Option("--security", help="Immediate cut for a security problem.")
    ] = False,
) -> None:
    """End an exchange with two months' notice, or at once for a security problem."""

    async def work(session: AsyncSession) -> compliance.ResiliationView:
        return await compliance.request_resiliation(
            session=session,
            id_teleservice=id_teleservice,
            party=party,
            reason=reason,
            effective_on=effective.date() if effective else None,
            security=security,
            actor=_actor(),
        )

    view = run(work, expected=EXPECTED)
    state = "ended" if view.ended else f"effective on {view.effective_on.isoformat()}"
    console.print(f"resiliation {view.id}: {state}")


@resiliation.command("legal-basis-end")
def resiliation_legal_basis_end(
    id_teleservice: str,
    on: Annotated[dt.datetime, typer.Option("--on", formats=DATE, help="Last day of the text.")],
    reason: Annotated[str, typer.Option(help="Which legal text stops applying.")],
) -> None:
    """The legal basis of the exchange ends: the exchange ends that day."""

    async def work(session: AsyncSession) -> compliance.ResiliationView:
        return await compliance.end_of_legal_basis(
            session=session,
            id_teleservice=id_teleservice,
            ends_on=on.date(),
            reason=reason,
            actor=_actor(),
        )

    view = run(work, expected=EXPECTED)
    state = "ended" if view.ended else f"ends on {view.effective_on.isoformat()}"
    console.print(f"resiliation {view.id}: {state}")


# -- terms -------------------------------------------------------------------------------


@terms.command("publish")
def terms_publish(
    version: Annotated[str, typer.Option(help="e.g. v2026-12.")],
    text: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False)],
    effective: Annotated[dt.datetime, typer.Option(formats=DATE, help="Applies from.")],
    environment: Annotated[Environment, typer.Option()] = Environment.PRODUCTION,
) -> None:
    """Publish a new version and notify every consumer organisation of the environment."""
    body = text.read_text(encoding="utf-8")

    async def work(session: AsyncSession) -> compliance.TermsView:
        return await compliance.publish_terms(
            session=session,
            environment=environment,
            version=version,
            text=body,
            effective_on=effective.date(),
            actor=_actor(),
        )

    view = run(work, expected=EXPECTED)
    console.print(f"terms {view.version} ({view.environment.value}) from {view.effective_on}")


@terms.command("accept")
def terms_accept(
    siret: str,
    version: Annotated[str, typer.Option()],
    environment: Annotated[Environment, typer.Option()] = Environment.PRODUCTION,
) -> None:
    """Record an organisation's acceptance of a version."""

    async def work(session: AsyncSession) -> compliance.TermsStatus:
        return await compliance.accept_terms(
            session=session,
            organisation_siret=siret,
            environment=environment,
            version=version,
            actor=_actor(),
        )

    status = run(work, expected=EXPECTED)
    console.print(f"{siret} accepted {version}; in force: {status.in_force.version}")


@terms.command("list")
def terms_list() -> None:
    """The versions of the terms, per environment."""

    async def work(session: AsyncSession) -> list[compliance.TermsView]:
        return await compliance.versions(session=session)

    table = Table(title="terms of use")
    for column in ("environment", "version", "from", "sha256"):
        table.add_column(column)
    for view in run(work, expected=EXPECTED):
        table.add_row(view.environment.value, view.version, str(view.effective_on), view.sha256)
    console.print(table)


@terms.command("status")
def terms_status(siret: str) -> None:
    """The version in force and the one the organisation accepted, per environment."""

    async def work(session: AsyncSession) -> list[compliance.TermsStatus]:
        return await compliance.terms_status(session=session, organisation_siret=siret)

    for status in run(work, expected=EXPECTED):
        mark = "up to date" if status.up_to_date else "TO ACCEPT"
        console.print(
            f"{status.environment.value}: in force {status.in_force.version},"
            f" accepted {status.accepted_version or 'none'} ({mark})"
        )


# -- changes, notices, deadlines ---------------------------------------------------------


@change.command("announce")
def change_announce(
    title: Annotated[str, typer.Option()],
    description: Annotated[str, typer.Option()],
    effective: Annotated[dt.datetime, typer.Option(formats=DATE, help="When it applies.")],
    emergency: Annotated[
        str | None, typer.Option(help="The emergency's reason (7 working days, not 14).")
    ] = None,
    environment: Annotated[Environment, typer.Option()] = Environment.PRODUCTION,
) -> None:
    """Announce a change: 14 working days ahead at least (7 in an emergency)."""
    alsace_moselle = get_settings().calendar_alsace_moselle

    async def work(session: AsyncSession) -> compliance.ChangeView:
        return await compliance.announce_change(
            session=session,
            title=title,
            description=description,
            effective_on=effective.date(),
            emergency_reason=emergency,
            environment=environment,
            alsace_moselle=alsace_moselle,
            actor=_actor(),
        )

    view = run(work, expected=EXPECTED)
    console.print(f"change {view.id} announced for {view.effective_on.isoformat()}")


@app.command("notices")
def notices(siret: str) -> None:
    """The written notices of an organisation, newest first."""

    async def work(session: AsyncSession) -> list[compliance.NoticeView]:
        return await compliance.notices_of(session=session, organisation_siret=siret)

    table = Table(title=f"notices of {siret}")
    for column in ("id", "created", "kind", "to", "subject", "status"):
        table.add_column(column)
    for view in run(work, expected=EXPECTED):
        table.add_row(
            str(view.id),
            view.created_at.isoformat(timespec="minutes"),
            view.kind,
            view.recipient or "-",
            view.subject,
            view.status,
        )
    console.print(table)


@app.command("deadlines")
def deadlines(
    siret: Annotated[
        str | None, typer.Option(help="One organisation's (every date ahead).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Without --siret: the coming N days.")] = 120,
) -> None:
    """The coming deadlines: of one organisation, or of everyone in the coming days."""

    async def work(session: AsyncSession) -> list[compliance.Deadline]:
        if siret is not None:
            return await compliance.deadlines_of(session=session, organisation_siret=siret)
        return await compliance.upcoming_deadlines(session=session, days=days)

    table = Table(title="deadlines")
    for column in ("date", "kind", "organisation", "téléservice", "what"):
        table.add_column(column)
    for found in run(work, expected=EXPECTED):
        table.add_row(
            found.on.isoformat(),
            found.kind,
            found.organisation_siret or "all",
            found.id_teleservice or "-",
            found.label,
        )
    console.print(table)
