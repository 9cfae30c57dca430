"""``ensu pki``: the development PKI for mutual TLS (R-GW-1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ensu import development
from ensu.config import Environment, Settings, get_settings
from ensu.pki import service
from ensu.pki.service import PkiError

app = typer.Typer(
    help="Development PKI: a CA, the server certificate and consumer certificates.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
#: Certificates closer than this to their expiry are flagged by ``show``.
EXPIRY_WARNING = dt.timedelta(days=30)


def _development_directory() -> Path:
    """The PKI directory; production never gets a development PKI."""
    settings: Settings = get_settings()
    if settings.environment is Environment.PRODUCTION:
        _fail("the development PKI is not for production: use certificates from a real CA")
    return settings.pki_dir_path


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]Error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


@app.command()
def init(
    force: bool = typer.Option(
        False,
        "--force",
        help="Regenerate everything; certificates issued before stop being trusted.",
    ),
) -> None:
    """Create the CA, the server certificate and consumer-a, consumer-b (once)."""
    directory = _development_directory()
    registry = get_settings().var_dir / development.REGISTRY_NAME
    try:
        created = service.init(directory=directory, force=force, registry=registry)
    except PkiError as error:
        _fail(str(error))
    if not created:
        console.print(f"The development PKI is already in {directory} (--force to regenerate).")
        return
    console.print(f"Development PKI written to {directory}:")
    for info in service.describe(directory=directory):
        console.print(f"  {info.path.name:<16} {info.subject}", highlight=False)


@app.command()
def issue(
    name: str = typer.Argument(
        ..., help="File name of the consumer: NAME.pem, NAME.key (a-z, 0-9, dashes)."
    ),
    organisation: str | None = typer.Option(
        None, "--organisation", "-o", help="Organisation (O) of the certificate's subject."
    ),
    force: bool = typer.Option(False, "--force", help="Re-issue if NAME already exists."),
) -> None:
    """Issue another consumer (client) certificate signed by the development CA."""
    directory = _development_directory()
    try:
        path = service.issue_client(
            directory=directory, name=name, organisation=organisation, force=force
        )
    except PkiError as error:
        _fail(str(error))
    info = service.describe(directory=directory)
    (issued,) = (entry for entry in info if entry.path == path)
    console.print(f"Issued {path} ({issued.subject})", highlight=False)
    console.print(f"  x5t#S256 {issued.thumbprint_s256}", highlight=False)


@app.command()
def revoke(
    name: str = typer.Argument(..., help="The consumer whose certificate NAME.pem is revoked."),
) -> None:
    """Revoke a consumer certificate: add it to the development CA's CRL (crl.pem)."""
    directory = _development_directory()
    try:
        serial = service.revoke(directory=directory, name=name)
    except PkiError as error:
        _fail(str(error))
    if serial is None:
        console.print(f"{name} is revoked already ({directory / 'crl.pem'}).", highlight=False)
        return
    console.print(
        f"Revoked {name} (serial {serial:#x}) in {directory / 'crl.pem'}.", highlight=False
    )
    console.print(
        "`ensu serve` refuses it from its next call (401 910001); nginx after `nginx -s reload`.",
        highlight=False,
    )


@app.command()
def show() -> None:
    """Subjects, SHA-256 thumbprints (x5t#S256 and hex) and expiry of every certificate."""
    directory = get_settings().pki_dir_path
    infos = service.describe(directory=directory)
    if not infos:
        _fail(f"no PKI in {directory}: run `ensu pki init`")
    table = Table(title=f"PKI in {directory}", show_lines=True)
    for column in ("file", "role", "subject", "x5t#S256 / SHA-256 (hex)", "expires"):
        table.add_column(column, overflow="fold")
    now = dt.datetime.now(dt.UTC)
    revoked = service.revoked_serials(directory=directory)
    for info in infos:
        table.add_row(
            info.path.name,
            info.role,
            info.subject,
            f"{info.thumbprint_s256}\n{info.sha256_hex}",
            "[red]revoked[/red]" if info.serial in revoked else _expiry(info.not_after, now=now),
        )
    console.print(table)


def _expiry(not_after: dt.datetime, *, now: dt.datetime) -> str:
    day = not_after.date().isoformat()
    if not_after <= now:
        return f"[red]{day} (expired)[/red]"
    if not_after - now <= EXPIRY_WARNING:
        return f"[yellow]{day} (soon)[/yellow]"
    return day
