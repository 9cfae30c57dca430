"""The ``ensu-client`` command: the API from a shell, and the secure silo (R-CON-1, R-CON-2).

The connection comes as options before the command (``--url``, ``--cert``, ``--key``,
``--cacert``, ``--client-id``, ``--teleservice``), else from the ``ENSU_CLIENT_*``
variables, else from a TOML file (``--config``, ``ENSU_CLIENT_CONFIG``, or
``~/.config/ensu-client/config.toml``). A refusal prints its code, its correlation id and
what to do, and exits 1.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ensu_client._client import Client
from ensu_client._config import (
    DEFAULT_CONFIG,
    ENV_PREFIX,
    ClientConfig,
    from_environment,
    merged,
    read_file,
)
from ensu_client._exceptions import (
    ApiError,
    ConfigurationError,
    DigestMismatch,
    EnsuClientError,
    RequestInvalid,
    TokenError,
    UnexpectedResponse,
)
from ensu_client._models import Document, DocumentRef
from ensu_client._silo import Silo, new_key_file

app = typer.Typer(
    name="ensu-client",
    help="A consumer's client of API ENSU DOCUMENTS, and its secure silo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
silo_app = typer.Typer(help="The secure silo: encrypted, traced, purged (R-CON-2).")
app.add_typer(silo_app, name="silo")

console = Console()
errors = Console(stderr=True)
PASSPHRASE_VARIABLE = f"{ENV_PREFIX}SILO_PASSPHRASE"


@dataclass
class Options:
    """What came before the command."""

    connection: dict[str, Any]
    config_file: Path | None
    silo: Path | None
    silo_key_file: Path | None

    def file_settings(self) -> dict[str, Any]:
        path = self.config_file
        if path is None:
            default = DEFAULT_CONFIG.expanduser()
            path = default if default.is_file() else None
        if path is None:
            return {}
        try:
            return read_file(path)
        except (OSError, ValueError) as error:
            raise ConfigurationError(f"cannot read the config file {path}: {error}") from None

    def config(self) -> ClientConfig:
        """The connection: options, else ``ENSU_CLIENT_*``, else the config file."""
        try:
            return merged(self.connection, from_environment(), self.file_settings())
        except ValueError as error:
            raise ConfigurationError(str(error)) from None

    def _silo_setting(self, name: str) -> Path | None:
        """A silo setting from the environment, else from the config file."""
        value = from_environment().get(name) or self.file_settings().get(name)
        return Path(value).expanduser() if value else None

    def open_silo(self, *, create: bool = False) -> Silo:
        directory = self.silo or self._silo_setting("silo")
        if directory is None:
            raise ConfigurationError(
                "no silo given: --silo DIR before the command, or ENSU_CLIENT_SILO",
                hint="Name the silo's folder with --silo (ensu-client silo init makes one).",
            )
        key_file = self.silo_key_file or self._silo_setting("silo_key_file")
        passphrase = None if key_file else _passphrase(confirm=create)
        if create:
            return Silo.create(directory, passphrase=passphrase, key_file=key_file)
        return Silo.open(directory, passphrase=passphrase, key_file=key_file)


def _passphrase(*, confirm: bool) -> str:
    """The silo's passphrase: ``ENSU_CLIENT_SILO_PASSPHRASE``, else asked (never an
    option: a command line is visible to every user of the machine)."""
    value = os.environ.get(PASSPHRASE_VARIABLE)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"the silo's passphrase: set {PASSPHRASE_VARIABLE} or give --silo-key-file",
            hint="Without a terminal the passphrase comes from the environment or a key file.",
        )
    entered: str = typer.prompt("Silo passphrase", hide_input=True, confirmation_prompt=confirm)
    return entered


@app.callback()
def connection(  # noqa: PLR0917 - typer options, passed by name by the CLI
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="The API's root, https://host:port [ENSU_CLIENT_URL].")
    ] = None,
    cert: Annotated[
        Path | None, typer.Option(help="Client certificate, PEM [ENSU_CLIENT_CERT].")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="Its private key, PEM [ENSU_CLIENT_KEY].")
    ] = None,
    cacert: Annotated[
        Path | None, typer.Option(help="CA of the server's certificate [ENSU_CLIENT_CACERT].")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option(help="OAuth client_id [ENSU_CLIENT_CLIENT_ID].")
    ] = None,
    teleservice: Annotated[
        str | None, typer.Option(help="ID_Teleservice [ENSU_CLIENT_TELESERVICE].")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar=f"{ENV_PREFIX}CONFIG",
            help=f"TOML file, its settings in a 'connection' table (default {DEFAULT_CONFIG}).",
        ),
    ] = None,
    silo: Annotated[Path | None, typer.Option(help="The silo's folder [ENSU_CLIENT_SILO].")] = None,
    silo_key_file: Annotated[
        Path | None,
        typer.Option(
            help="The silo's key file [ENSU_CLIENT_SILO_KEY_FILE]; else a passphrase"
            f" ({PASSPHRASE_VARIABLE}, or asked)."
        ),
    ] = None,
) -> None:
    """Connection options come before the command; the client secret of a
    client_secret_basic client only from ENSU_CLIENT_CLIENT_SECRET or the config file."""
    given = {"url": url, "cert": cert, "key": key, "cacert": cacert}
    given |= {"client_id": client_id, "teleservice": teleservice}
    ctx.obj = Options(given, config, silo, silo_key_file)


def _options(ctx: typer.Context) -> Options:
    options: Options = ctx.ensure_object(Options)
    return options


def make_client(config: ClientConfig) -> Client:
    return Client(config=config)


@contextmanager
def _client(ctx: typer.Context) -> Iterator[Client]:
    with make_client(_options(ctx).config()) as client:
        yield client


def _print_json(data: Any) -> None:
    console.out(json.dumps(data, ensure_ascii=False, indent=2), highlight=False)


# -- the API ------------------------------------------------------------------------


@app.command()
def health(ctx: typer.Context) -> None:
    """The service's state (etatSante)."""
    with _client(ctx) as client:
        result = client.health()
    console.print(f"{result.value.statut}: {escape(result.value.descriptif)}")


@app.command()
def mention(ctx: typer.Context) -> None:
    """The mention d'information to show your users before the exchange (R-CON-1)."""
    with _client(ctx) as client:
        result = client.mention_information()
    console.print(escape(result.value.texte))


@app.command()
def codes(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The document codes of your perimeter."""
    with _client(ctx) as client:
        result = client.codes_documents()
    if as_json:
        _print_json([dataclasses.asdict(entry) for entry in result.value])
        return
    table = Table("code", "libellé", "famille", "périodicité")
    for entry in result.value:
        table.add_row(entry.code, entry.libelle, entry.famille, entry.periodicite)
    console.print(table)


@app.command()
def documents(  # noqa: PLR0917 - typer options, passed by name by the CLI
    ctx: typer.Context,
    siren: Annotated[str | None, typer.Option(help="A company's SIREN (9 digits).")] = None,
    idsp: Annotated[str | None, typer.Option(help="A professional user's IDSP.")] = None,
    code: Annotated[list[str] | None, typer.Option(help="codeDocument (repeatable).")] = None,
    date_debut: Annotated[str | None, typer.Option("--from", help="dateDebut, YYYY-MM-DD.")] = None,
    date_fin: Annotated[str | None, typer.Option("--to", help="dateFin, YYYY-MM-DD.")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    taille: Annotated[int, typer.Option(min=1, max=100)] = 20,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
    reference: Annotated[
        str | None, typer.Option(help="Your case reference (referenceDemande, journaled).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The list as the API gives it.")] = False,
) -> None:
    """A company's (--siren) or a person's (--idsp) documents."""
    query: dict[str, Any] = {"siren": siren, "idsp": idsp, "code_document": code or ()}
    query |= {"date_debut": date_debut, "date_fin": date_fin, "reference_demande": reference}
    with _client(ctx) as client:
        if every:
            listed = list(client.iter_documents(taille=100, **query))
            if as_json:
                _print_json([dict(document.raw) for document in listed])
            else:
                _table(listed, f"{len(listed)} document(s)")
            return
        result = client.list_documents(page=page, taille=taille, **query)
    if as_json:
        _print_json(dict(result.value.raw))
        return
    shown = result.value
    caption = f"page {shown.page}, {len(shown.documents)} of {shown.total} document(s)"
    _table(list(shown.documents), f"{caption}; correlation id {result.correlation_id}")


def _table(listed: Sequence[Document], caption: str) -> None:
    table = Table("document", "code", "libellé", "période", "émis le", "octets", caption=caption)
    for document in listed:
        period = f"{document.periode_debut} – {document.periode_fin}"
        table.add_row(
            str(document.ref),
            document.code_document,
            document.libelle,
            period,
            str(document.date_emission),
            str(document.taille),
        )
    table.columns[0].overflow = "fold"
    console.print(table)


def _reference(text: str) -> DocumentRef:
    try:
        return DocumentRef.parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


@app.command()
def get(
    ctx: typer.Context,
    document: Annotated[str, typer.Argument(help="IDENSUA:…, DOCDISTRIB:… or DOCCFS:…")],
) -> None:
    """One document's metadata, as the API gives it."""
    with _client(ctx) as client:
        result = client.get_document(_reference(document))
    _print_json(dict(result.value.raw))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )


@app.command()
def fetch(
    ctx: typer.Context,
    document: Annotated[str, typer.Argument(help="IDENSUA:…, DOCDISTRIB:… or DOCCFS:…")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The PDF file (default IDENTIFIER.pdf).")
    ] = None,
    retention_days: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Store in the silo (--silo) for this many days instead of writing a file.",
        ),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Your case reference, kept with it in the silo.")
    ] = None,
) -> None:
    """Download a document, its SHA-256 checked (Repr-Digest); into the silo with
    --retention-days."""
    ref = _reference(document)
    silo = _options(ctx).open_silo() if retention_days is not None else None
    with _client(ctx) as client:
        metadata = client.get_document(ref).value
        with _progress() as progress:
            task = progress.add_task(str(ref.type.value), total=metadata.taille)

            def advance(received: int, total: int | None) -> None:
                progress.update(task, completed=received, total=total or metadata.taille)

            if silo is None or retention_days is None:
                target = output or Path(f"{metadata.identifiants.idensua}.pdf")
                downloaded = client.download(metadata, target, on_progress=advance).value
                content = None
            else:
                content = client.content(metadata, on_progress=advance)
    if silo is None or retention_days is None or content is None:
        console.print(f"{downloaded.path}  sha-256 {downloaded.sha256}  checked")
        return
    entry = silo.store(
        str(metadata.ref),
        content=content.value,
        metadata={**metadata.raw, "correlationId": content.correlation_id},
        retain_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=retention_days),
        reference=reference,
    )
    until = f"{entry.retain_until:%Y-%m-%d %H:%M}"
    console.print(f"{entry.identity} stored in the silo until {until} UTC")
    if output is not None:
        output.write_bytes(content.value)


@app.command()
def quota(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The quota state (RateLimit-*) after one light call, which counts."""
    with _client(ctx) as client:
        result = client.quota()
    state = result.value
    if as_json:
        _print_json({"limit": state.limit, "remaining": state.remaining, "reset": state.reset})
        return
    console.print(
        f"{state.remaining} of {state.limit} calls left; the window resets in {state.reset} s"
    )


# -- the silo -----------------------------------------------------------------------


@silo_app.command("init")
def silo_init(
    ctx: typer.Context,
    new_key: Annotated[
        bool, typer.Option("--new-key-file", help="Make the --silo-key-file first.")
    ] = False,
) -> None:
    """Make an empty silo in --silo DIR, keyed by --silo-key-file or a passphrase."""
    options = _options(ctx)
    if new_key:
        if options.silo_key_file is None:
            raise ConfigurationError("--new-key-file needs --silo-key-file PATH")
        new_key_file(options.silo_key_file)
        console.print(f"key file {options.silo_key_file} made: keep it apart from the silo")
    silo = options.open_silo(create=True)
    console.print(f"silo ready in {silo.directory}")


@silo_app.command("list")
def silo_list(ctx: typer.Context) -> None:
    """What the silo holds, with each document's end of retention."""
    entries = _options(ctx).open_silo().entries()
    table = Table("document", "stored", "kept until", "reference", "bytes")
    for entry in entries:
        table.add_row(
            entry.identity,
            f"{entry.stored_at:%Y-%m-%d %H:%M}",
            f"{entry.retain_until:%Y-%m-%d %H:%M}",
            entry.reference or "",
            str(entry.size),
        )
    table.columns[0].overflow = "fold"
    console.print(table)


@silo_app.command("read")
def silo_read(
    ctx: typer.Context,
    document: Annotated[str, typer.Argument(help="IDENSUA:…")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the PDF.")],
    metadata: Annotated[bool, typer.Option("--metadata", help="Print its metadata.")] = False,
) -> None:
    """Decrypt a document out of the silo, its integrity checked."""
    stored = _options(ctx).open_silo().read(str(_reference(document)))
    output.write_bytes(stored.content)
    if metadata:
        _print_json(dict(stored.metadata))
    else:
        console.print(f"{output}: {len(stored.content)} bytes, kept until {stored.retain_until}")


@silo_app.command("purge")
def silo_purge(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option(help="Delete what is past its retention at this ISO time (default now)."),
    ] = None,
) -> None:
    """Delete every document past its retention."""
    moment = dt.datetime.now(dt.UTC)
    if as_of is not None:
        try:
            moment = dt.datetime.fromisoformat(as_of)
        except ValueError:
            raise typer.BadParameter(f"{as_of!r} is not an ISO date or time") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    purged = _options(ctx).open_silo().purge(now=moment)
    for entry in purged:
        console.print(f"purged {entry.identity} (kept until {entry.retain_until})")
    console.print(f"{len(purged)} document(s) purged")


@silo_app.command("verify")
def silo_verify(ctx: typer.Context) -> None:
    """Check every document and the trace's chain."""
    count = _options(ctx).open_silo().verify()
    console.print(f"{count} document(s) and the trace checked: intact")


@silo_app.command("trace")
def silo_trace(ctx: typer.Context) -> None:
    """The silo's access trace, its chain checked."""
    for entry in _options(ctx).open_silo().trace():
        console.out(
            f"{entry.seq:6d} {entry.time} {entry.action:<12} {entry.object or '-'}"
            f" {entry.user} {entry.reference or ''}",
            highlight=False,
        )


# -- errors -------------------------------------------------------------------------


def describe(error: EnsuClientError) -> list[str]:
    """The lines a refusal is reported in: what, its code and correlation id, what to do."""
    lines = [f"error: {error.message}"]
    if isinstance(error, ApiError):
        lines.append(f"  code {error.code} (HTTP {error.status})")
        if isinstance(error, RequestInvalid):
            lines += [f"  {item.get('parametre')}: {item.get('message')}" for item in error.erreurs]
        if error.retry_after is not None:
            lines.append(f"  retry after {error.retry_after:g} s")
    elif isinstance(error, TokenError):
        lines.append(f"  POST /token: {error.error} (HTTP {error.status})")
    correlation = getattr(error, "correlation_id", None)
    if isinstance(error, ApiError | UnexpectedResponse | DigestMismatch) and correlation:
        lines.append(f"  correlation id {correlation}")
    if error.hint:
        lines.append(f"  what to do: {error.hint}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    try:
        app(args=list(argv) if argv is not None else None, prog_name="ensu-client")
    except EnsuClientError as error:
        for line in describe(error):
            errors.print(escape(line), highlight=False)
        raise SystemExit(1) from None
