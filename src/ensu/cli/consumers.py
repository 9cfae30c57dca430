"""``ensu consumers``: organisations and téléservices (APIM accounts, R-HAB-4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.config import Environment, get_settings
from ensu.consumers import dev
from ensu.consumers import quota as quotas
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod, ContactRole, TeleserviceStatus
from ensu.consumers.schemas import (
    FAMILIES,
    CertificateRef,
    Contact,
    CreatedTeleservice,
    TeleserviceView,
)

app = typer.Typer(help="Consumers: organisations and their téléservices.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")
DATE_FORMATS = ["%Y-%m-%d"]


def actor() -> str:
    """Who runs the command, for the journal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def run(
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    expected: tuple[type[Exception], ...] = (consumers.ConsumerError,),
) -> T:
    """Run ``work`` in one committed transaction; ``expected`` errors (their message is for
    the operator) and database errors exit with status 1."""

    async def scoped(sessionmaker: async_sessionmaker[AsyncSession]) -> T:
        async with db.session_scope(sessionmaker) as session:
            return await work(session)

    return run_with_sessionmaker(scoped, expected=expected)


def run_with_sessionmaker(
    work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]],
    *,
    expected: tuple[type[Exception], ...],
) -> T:
    """Run ``work``, which opens its own transactions (a job that sends between two,
    like a webhook or a mail); ``expected`` errors exit with status 1."""

    async def main() -> T:
        engine = db.make_engine(get_settings().database_url)
        try:
            return await work(db.make_sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except expected as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OperationalError, ProgrammingError) as exc:
        errors.print(f"[red]database error:[/red] {exc.orig}; has `ensu db upgrade` been run?")
        raise typer.Exit(1) from None


def print_notices(notices: list[dict[str, object]]) -> None:
    """One line per written notice to a téléservice's contact (R-OPS-4); exit status 1
    when one was not sent."""
    for notice in notices:
        console.print(
            f"{notice['id_teleservice']} {notice['role']} {notice['email']}: {notice['outcome']}"
        )
    if any(notice["outcome"] != "sent" for notice in notices):
        raise typer.Exit(1)


def _certificates(paths: list[Path], thumbprints: list[str], subject: str) -> list[CertificateRef]:
    refs = [CertificateRef(thumbprint=value, subject=subject) for value in thumbprints]
    for path in paths:
        try:
            refs.append(CertificateRef.from_pem(path.read_bytes()))
        except (OSError, ValueError) as exc:
            errors.print(f"[red]error:[/red] {path}: {exc}")
            raise typer.Exit(1) from None
    if not refs:
        errors.print("[red]error:[/red] give at least one --certificate or --thumbprint")
        raise typer.Exit(2)
    return refs


@app.command()
def create(
    *,
    organisation_siret: Annotated[str, typer.Option(help="SIRET of the organisation (14 digits).")],
    name: Annotated[str, typer.Option(help="Name of the téléservice (the use case).")],
    period_start: Annotated[
        dt.datetime, typer.Option(formats=DATE_FORMATS, help="Start of the authorised data period.")
    ],
    period_end: Annotated[
        dt.datetime, typer.Option(formats=DATE_FORMATS, help="End of the authorised data period.")
    ],
    organisation_name: Annotated[
        str | None, typer.Option(help="Name of the organisation, if it is new.")
    ] = None,
    environment: Annotated[Environment, typer.Option(help="sandbox or production.")] = (
        Environment.SANDBOX
    ),
    certificate: Annotated[
        list[Path] | None,
        typer.Option(help="Client certificate PEM (repeatable).", exists=True, dir_okay=False),
    ] = None,
    thumbprint: Annotated[
        list[str] | None, typer.Option(help="x5t#S256 of a certificate, instead of its PEM.")
    ] = None,
    subject: Annotated[str, typer.Option(help="Subject recorded with --thumbprint.")] = "?",
    family: Annotated[list[str] | None, typer.Option(help="Family in the perimeter.")] = None,
    code: Annotated[list[str] | None, typer.Option(help="Document code in the perimeter.")] = None,
    network: Annotated[
        list[str] | None, typer.Option(help="Allowed CIDR (repeatable); default loopback.")
    ] = None,
    auth_method: Annotated[AuthMethod, typer.Option(help="Token endpoint authentication.")] = (
        AuthMethod.TLS_CLIENT_AUTH
    ),
    quota: Annotated[
        int | None, typer.Option(min=1, help="Calls per minute; default 50 sandbox, 500 prod.")
    ] = None,
    valid_from: Annotated[
        dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="Default: today.")
    ] = None,
    valid_until: Annotated[
        dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="Default: open-ended.")
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="Default: generated.")] = None,
    id_teleservice: Annotated[str | None, typer.Option(help="Default: generated.")] = None,
    mention: Annotated[
        str | None, typer.Option(help="Information text (R-CON-1); default generated.")
    ] = None,
) -> None:
    """Create a téléservice; prints its client_id, ID_Teleservice and secret (once)."""
    refs = _certificates(certificate or [], thumbprint or [], subject)

    async def _create_teleservice(session: AsyncSession, who: str) -> CreatedTeleservice:
        return await consumers.create_teleservice(
            session=session,
            organisation_siret=organisation_siret,
            name=name,
            environment=environment,
            certificates=refs,
            families=family or [],
            codes=code or [],
            period_start=period_start.date(),
            period_end=period_end.date(),
            networks=network or None,
            auth_method=auth_method,
            valid_from=valid_from.date() if valid_from else None,
            valid_until=valid_until.date() if valid_until else None,
            quota_per_minute=quota,
            client_id=client_id,
            id_teleservice=id_teleservice,
            mention_information=mention,
            actor=who,
        )

    async def work(session: AsyncSession) -> CreatedTeleservice:
        who = actor()
        if organisation_name is not None:  # else it must exist already
            await consumers.ensure_organisation(
                session=session, siret=organisation_siret, name=organisation_name, actor=who
            )
        try:
            return await _create_teleservice(session, who)
        except consumers.JustificationMissing as exc:  # R-Q-2, refused by the service
            raise consumers.JustificationMissing(
                f"{exc}; create the téléservice at the default, then run"
                " `ensu consumers quota` with the decision",
                exc.missing,
            ) from None

    created = run(work)
    console.print(f"client_id       {created.client_id}")
    console.print(f"ID_Teleservice  {created.id_teleservice}")
    if created.client_secret is not None:
        console.print(f"client_secret   {created.client_secret}")
        console.print("[yellow]The secret is shown once: store it now.[/yellow]")


async def _find(session: AsyncSession, identifier: str) -> TeleserviceView:
    view = await consumers.get_by_id_teleservice(session=session, id_teleservice=identifier)
    view = view or await consumers.get_by_client_id(session=session, client_id=identifier)
    if view is None:
        raise consumers.NotFoundError(
            f"no téléservice with ID_Teleservice or client_id {identifier}"
        )
    return view


def _validity(view: TeleserviceView) -> str:
    until = view.valid_until.isoformat() if view.valid_until else "…"
    return f"{view.valid_from.isoformat()} → {until}"


def _perimeter(view: TeleserviceView) -> str:
    what = (
        "whole catalogue"
        if view.families == FAMILIES
        else ", ".join(sorted(view.families) + sorted(view.codes))
    )
    return f"{what}; {view.period_start.isoformat()} → {view.period_end.isoformat()}"


def _detail_table(view: TeleserviceView) -> Table:
    table = Table(show_header=False, title=view.name)
    rows = [
        ("ID_Teleservice", view.id_teleservice),
        ("client_id", view.client_id),
        ("organisation", f"{view.organisation_name} ({view.organisation_siret})"),
        ("environment", view.environment.value),
        ("status", view.status.value),
        ("validity", _validity(view)),
        ("auth method", view.auth_method.value),
        ("quota / minute", str(view.quota_per_minute)),
        ("families", ", ".join(sorted(view.families)) or "—"),
        ("codes", ", ".join(sorted(view.codes)) or "—"),
        ("data period", f"{view.period_start.isoformat()} → {view.period_end.isoformat()}"),
        ("networks", ", ".join(str(network) for network in view.networks)),
        *(("certificate", f"{ref.thumbprint}  {ref.subject}") for ref in view.certificates),
        ("mention", view.mention_information),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


@app.command()
def show(
    identifier: Annotated[str, typer.Argument(help="ID_Teleservice or client_id.")],
) -> None:
    """Show one téléservice: identifiers, perimeter, networks, certificates, mention."""

    async def work(session: AsyncSession) -> TeleserviceView:
        return await _find(session, identifier)

    console.print(_detail_table(run(work)))


@app.command("list")
def list_(
    environment: Annotated[Environment | None, typer.Option(help="Only this environment.")] = None,
    status: Annotated[TeleserviceStatus | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """List the téléservices."""

    async def work(session: AsyncSession) -> list[TeleserviceView]:
        return await consumers.list_teleservices(
            session=session, environment=environment, status=status
        )

    views = run(work)
    table = Table(title=f"{len(views)} téléservice(s)")
    for column in ("ID_Teleservice", "client_id", "env", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("quota/min", justify="right")
    table.add_column("perimeter", overflow="fold")
    for view in views:
        table.add_row(
            view.id_teleservice,
            view.client_id,
            view.environment.value,
            view.status.value,
            str(view.quota_per_minute),
            _perimeter(view),
        )
    console.print(table)


@app.command()
def contacts(
    identifier: Annotated[str, typer.Argument(help="ID_Teleservice or client_id.")],
    role: Annotated[ContactRole | None, typer.Option(help="Set the contact of this role.")] = None,
    name: Annotated[str | None, typer.Option(help="The contact's name (with --role).")] = None,
    email: Annotated[str | None, typer.Option(help="The contact's e-mail (with --role).")] = None,
) -> None:
    """Show a téléservice's contacts, or set one (--role, --name, --email; R-HAB-1)."""
    given: list[Contact] = []
    if role is not None or name is not None or email is not None:
        if role is None or name is None or email is None:
            errors.print("error: --role, --name and --email go together")
            raise typer.Exit(1)
        try:
            given.append(Contact(role=role, name=name, email=email))
        except ValueError as error:
            errors.print(f"error: {error}")
            raise typer.Exit(1) from None

    async def work(session: AsyncSession) -> tuple[str, list[Contact]]:
        view = await _find(session, identifier)
        if given:
            found = await consumers.set_contacts(
                session=session, id_teleservice=view.id_teleservice, contacts=given, actor=actor()
            )
        else:
            found = await consumers.contacts_of(session=session, id_teleservice=view.id_teleservice)
        return view.id_teleservice, found

    id_teleservice, found = run(work)
    table = Table(title=f"{id_teleservice}: {len(found)} contact(s)")
    for column in ("role", "name", "email"):
        table.add_column(column)
    for contact in found:
        table.add_row(contact.role.value, contact.name, contact.email)
    console.print(table)


Transition = Callable[..., Awaitable[TeleserviceView]]


def _transition(action: Transition, identifier: str, reason: str | None) -> None:
    async def work(session: AsyncSession) -> TeleserviceView:
        view = await _find(session, identifier)
        return await action(
            session=session, id_teleservice=view.id_teleservice, actor=actor(), reason=reason
        )

    view = run(work)
    console.print(f"{view.id_teleservice} ({view.client_id}) is now {view.status.value}")


Identifier = Annotated[str, typer.Argument(help="ID_Teleservice or client_id.")]
Reason = Annotated[str | None, typer.Option(help="Why (recorded in the journal).")]


@app.command()
def suspend(identifier: Identifier, reason: Reason = None) -> None:
    """Suspend a téléservice: no token and no data until resumed."""
    _transition(consumers.suspend, identifier, reason)


@app.command()
def resume(identifier: Identifier, reason: Reason = None) -> None:
    """Resume a suspended téléservice."""
    _transition(consumers.resume, identifier, reason)


@app.command()
def revoke(
    identifier: Identifier,
    reason: Reason = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Revoke a téléservice for good (this cannot be undone)."""
    if not yes:
        typer.confirm(f"Revoke {identifier} for good?", abort=True)
    _transition(consumers.revoke, identifier, reason)


@app.command("ensure-dev")
def ensure_dev() -> None:
    """Create the development sandbox consumers for var/pki/consumer-{a,b}.pem (idempotent)."""
    pki_dir = get_settings().pki_dir_path

    async def work(session: AsyncSession) -> list[tuple[dev.DevConsumer, dev.Outcome]]:
        return await dev.ensure_dev(session=session, pki_dir=pki_dir, actor=actor())

    for consumer, outcome in run(work):
        console.print(
            f"{consumer.stem}: client_id {consumer.client_id}, "
            f"ID_Teleservice {consumer.id_teleservice} — {outcome.value}"
        )


# -- quota decisions (R-Q-2) -------------------------------------------------------------

#: The CLI options of the justification fields, for the refusal's message.
JUSTIFICATION_OPTIONS = {
    "load_peaks": "--peaks",
    "files_count": "--files",
    "periodicity": "--periodicity",
}


def _decide_quota(
    identifier: str, per_minute: int, decided_by: str, reasons: quotas.QuotaJustification
) -> None:
    async def work(session: AsyncSession) -> quotas.QuotaDecisionView:
        view = await _find(session, identifier)
        try:
            return await quotas.decide_quota(
                session=session,
                id_teleservice=view.id_teleservice,
                per_minute=per_minute,
                decided_by=decided_by,
                justification=reasons,
                actor=actor(),
            )
        except quotas.JustificationMissing as exc:
            options = " ".join(JUSTIFICATION_OPTIONS[name] for name in exc.missing)
            raise consumers.InvalidConsumerData(f"{exc}; missing options: {options}") from None

    decision = run(work)
    console.print(
        f"{decision.id_teleservice}: quota {decision.previous_per_minute} → "
        f"{decision.per_minute} calls/minute (default {decision.default_per_minute}), "
        f"decided by {decision.decided_by}"
    )


def _justification(reasons: quotas.QuotaJustification) -> str:
    if reasons.missing() == list(quotas.JUSTIFICATION_FIELDS):
        return "—"
    files = str(reasons.files_count) if reasons.files_count is not None else "—"
    return (
        f"pics de charge: {reasons.load_peaks or '—'}\n"
        f"nombre de dossiers: {files}\n"
        f"périodicité: {reasons.periodicity or '—'}"
    )


def _history_table(view: TeleserviceView, decisions: list[quotas.QuotaDecisionView]) -> Table:
    table = Table(
        title=f"{view.id_teleservice}: {view.quota_per_minute} calls/minute, "
        f"{len(decisions)} decision(s)",
        show_lines=True,
    )
    table.add_column("decided (UTC)", no_wrap=True)
    table.add_column("quota", no_wrap=True)
    table.add_column("decided by / recorded by", overflow="fold")
    table.add_column("justification", overflow="fold")
    for decision in decisions:
        table.add_row(
            decision.decided_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            f"{decision.previous_per_minute} → {decision.per_minute}",
            f"{decision.decided_by}\n{decision.recorded_by}",
            _justification(decision.justification),
        )
    return table


def _show_quota_history(identifier: str) -> None:
    async def work(
        session: AsyncSession,
    ) -> tuple[TeleserviceView, list[quotas.QuotaDecisionView]]:
        view = await _find(session, identifier)
        history = await quotas.quota_history(session=session, id_teleservice=view.id_teleservice)
        return view, history

    view, history = run(work)
    console.print(_history_table(view, history))


@app.command()
def quota(
    identifier: Identifier,
    *,
    per_minute: Annotated[
        int | None,
        typer.Option(min=1, max=quotas.MAX_PER_MINUTE, help="The new quota, calls per minute."),
    ] = None,
    decided_by: Annotated[
        str | None, typer.Option(help="Who decided, at the producer (name and role).")
    ] = None,
    peaks: Annotated[
        str | None, typer.Option(help="Pics de charge: when the calls peak, how high.")
    ] = None,
    files: Annotated[
        int | None, typer.Option(min=1, help="Nombre de dossiers the use case processes.")
    ] = None,
    periodicity: Annotated[
        str | None, typer.Option(help="Périodicité: when the calls happen (daily, monthly…).")
    ] = None,
    history: Annotated[bool, typer.Option("--history", help="List the decisions.")] = False,
) -> None:
    """Decide a téléservice's quota (R-Q-2), or list its decisions.

    Above the environment's default (500/min in production, 50 in the sandbox) the
    decision needs --peaks, --files and --periodicity. Without --per-minute, lists the
    decisions (as --history does).
    """
    if per_minute is None:
        if any(value is not None for value in (decided_by, peaks, files, periodicity)):
            errors.print("[red]error:[/red] give --per-minute N to decide a quota")
            raise typer.Exit(2)
        _show_quota_history(identifier)
        return
    if history:
        errors.print("[red]error:[/red] --history lists decisions: it takes no --per-minute")
        raise typer.Exit(2)
    if decided_by is None or not decided_by.strip():
        errors.print("[red]error:[/red] --decided-by is required: who decided this quota")
        raise typer.Exit(2)
    reasons = quotas.QuotaJustification(
        load_peaks=peaks, files_count=files, periodicity=periodicity
    )
    _decide_quota(identifier, per_minute, decided_by, reasons)
