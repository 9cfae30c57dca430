"""``ensu staff``: the producer's staff accounts (roles, TOTP; R-HAB-2) and ``ensu portal``.

``create`` prints the TOTP secret once, with a QR code to scan in an authenticator; the
secret is never shown again (``reset-totp`` makes a new one). ``totp`` prints the current
code of a staff member: development (sandbox) only. ``ensure-dev`` (run by ``make run``)
creates the development instructor and prints how to sign in.
"""

from __future__ import annotations

import io
import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import qrcode
import typer
import uvicorn
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import files
from ensu.accounts import service as accounts
from ensu.accounts.errors import AccountError, InvalidAccountData
from ensu.accounts.principal import StaffRole
from ensu.accounts.schemas import StaffCreated
from ensu.cli.consumers import actor, run
from ensu.config import Environment, Settings, get_settings

app = typer.Typer(help="Staff accounts: roles and second factor.", no_args_is_help=True)
portal_app = typer.Typer(help="The portal (people's pages), on its own listener.")
console = Console(highlight=False)
errors = Console(stderr=True)

DEV_EMAIL = "instructeur@ensu.localhost"
DEV_NAME = "Instructeur de développement"
PORTAL_FACTORY = "ensu.portal.app:create_served_portal"


def _qr(uri: str) -> str:
    code = qrcode.QRCode(border=1)
    code.add_data(uri)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def _enrolment(created: StaffCreated) -> None:
    console.print(f"TOTP secret (shown once): [bold]{created.totp_secret}[/bold]")
    console.print("Scan this QR code with an authenticator application:")
    console.print(_qr(created.provisioning_uri), markup=False)
    console.print(created.provisioning_uri, markup=False, soft_wrap=True)


def _password(generate: bool) -> tuple[str, bool]:
    if generate or not sys.stdin.isatty():
        return secrets.token_urlsafe(15), True
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password, False


def _invalid(exc: InvalidAccountData) -> AccountError:
    return AccountError("; ".join(exc.fields.values()))


@app.command()
def create(
    email: Annotated[str, typer.Option(help="The staff member's e-mail address (their login).")],
    role: Annotated[StaffRole, typer.Option(help="reporter < instructor < manager; admin.")],
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    generate_password: Annotated[
        bool, typer.Option(help="Generate the password and print it once (else prompted).")
    ] = False,
) -> None:
    """Create a staff account; prints the TOTP secret once, and its QR code."""
    password, generated = _password(generate_password)

    async def work(session: AsyncSession) -> StaffCreated:
        try:
            return await accounts.create_staff(
                session=session,
                name=name or email.partition("@")[0],
                email=email,
                role=role,
                password=password,
                actor=actor(),
            )
        except InvalidAccountData as exc:
            raise _invalid(exc) from None

    created = run(work, expected=(AccountError,))
    console.print(f"{created.person.email}: {created.person.role} created")
    if generated:
        console.print(f"Password (shown once): [bold]{password}[/bold]")
    _enrolment(created)


@app.command("reset-totp")
def reset_totp(email: str) -> None:
    """A new TOTP secret (a lost authenticator); the old one stops working."""

    async def work(session: AsyncSession) -> StaffCreated:
        return await accounts.reset_totp(session=session, email=email, actor=actor())

    _enrolment(run(work, expected=(AccountError,)))


def _development_only(settings: Settings) -> None:
    if settings.environment is not Environment.SANDBOX:
        errors.print("[red]error:[/red] development (sandbox) only")
        raise typer.Exit(1)


@app.command()
def totp(email: str) -> None:
    """Print a staff member's current TOTP code (development only)."""
    _development_only(get_settings())

    async def work(session: AsyncSession) -> str:
        return await accounts.current_code(session=session, email=email)

    console.print(run(work, expected=(AccountError,)))


def _dev_file(settings: Settings) -> Path:
    return settings.var_dir / "dev-staff.json"


@app.command("ensure-dev")
def ensure_dev() -> None:
    """Create the development instructor if missing, and print how to sign in."""
    settings = get_settings()
    _development_only(settings)
    kept = _dev_file(settings)
    known: dict[str, str] = json.loads(kept.read_text()) if kept.exists() else {}

    async def work(session: AsyncSession) -> StaffCreated | None:
        if await accounts.find_person(session=session, email=DEV_EMAIL) is not None:
            return None
        password = secrets.token_urlsafe(15)
        known[DEV_EMAIL] = password
        return await accounts.create_staff(
            session=session,
            name=DEV_NAME,
            email=DEV_EMAIL,
            role=StaffRole.INSTRUCTOR,
            password=password,
            actor=actor(),
        )

    created = run(work, expected=(AccountError,))
    if created is not None:
        files.write_private(kept, json.dumps(known).encode())
    password = known.get(DEV_EMAIL, f"(unknown: not in {kept}; `ensu staff create` another)")
    console.print(
        f"Portal: http://{settings.portal_host}:{settings.portal_port}/connexion — "
        f"development instructor {DEV_EMAIL}, password {password}; "
        f"TOTP code: `uv run ensu staff totp {DEV_EMAIL}`",
        markup=False,
        soft_wrap=True,
    )


@portal_app.command("serve")
def portal_serve(
    host: Annotated[str | None, typer.Option(help="Default: ENSU_PORTAL_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: ENSU_PORTAL_PORT.")] = None,
) -> None:
    """Serve the portal alone (``ensu serve`` runs it beside the API)."""
    settings = get_settings()
    uvicorn.run(
        PORTAL_FACTORY,
        factory=True,
        **portal_options(settings, host=host, port=port),
    )


def portal_options(
    settings: Settings, *, host: str | None = None, port: int | None = None
) -> dict[str, Any]:
    """uvicorn options of the portal's listener: plain HTTP, no client certificate."""
    return {
        "host": host or settings.portal_host,
        "port": port if port is not None else settings.portal_port,
        "proxy_headers": False,
        "server_header": False,
        "ws": "none",
    }
