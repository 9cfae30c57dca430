"""``ensu documents``: the documents feature's administration commands (R-DATA-1..4)."""

from __future__ import annotations

import asyncio
import getpass
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ensu import db
from ensu.config import Settings, get_settings
from ensu.documents import ingest
from ensu.documents import service as documents

app = typer.Typer(
    help="Documents: import PDFs and their metadata into the store.",
    no_args_is_help=True,
)

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 3
EXIT_CANCELLED = 130
#: Rejected rows shown on screen; the rest go to ``--report``.
SHOWN_REJECTIONS = 50

IMPORT_HELP = "\n\n".join(
    (
        "Import the documents listed in MANIFEST (R-DATA-1..4).",
        'MANIFEST is CSV (.csv: a header row, then one row per document; "," or ";" '
        "delimiter) or JSON Lines (.jsonl, .ndjson: one object per line), in UTF-8. Its "
        "columns (CSV) or keys (JSON), without regard to case:",
        "\n".join(
            (
                "- [bold]siren[/bold] (9 digits, valid Luhn check digit) or [bold]idsp[/bold] "
                "(6 to 16 capital letters or digits): exactly one",
                "- [bold]denomination[/bold] (optional): the subject's name, used when the "
                "subject is new",
                "- [bold]codeDocument[/bold]: a code of the catalogue, e.g. TVA-CA3",
                "- [bold]periodeDebut[/bold], [bold]periodeFin[/bold], "
                "[bold]dateEmission[/bold]: ISO dates (YYYY-MM-DD); periodeDebut <= periodeFin "
                "and dateEmission >= periodeDebut",
                "- [bold]fichier[/bold]: the PDF, relative to the manifest's folder (or "
                "absolute); it must start with %PDF-, not be empty, and not exceed "
                "ENSU_IMPORT_MAX_BYTES",
                "- [bold]IDENSUA[/bold] (64 or 128 base64url characters; generated when "
                "absent), [bold]DOCDISTRIB[/bold], [bold]DOCCFS[/bold] (1 to 64 characters A-Z "
                "a-z 0-9 . _ -): optional, each used once",
            )
        ),
        "Every row is checked. A rejected row is reported with its line in the file "
        "(the CSV header is line 1) and all its problems, and nothing of it is written; "
        "the good rows are imported. Each PDF goes to the blob store first, then the "
        "rows are committed in batches of --batch-size documents, so an interruption "
        "loses at most one batch. Running the same command again resumes: a document "
        "already stored (same subject, code, period and content) counts as already "
        "present, and nothing changes.",
        f"Exit status: {EXIT_OK} nothing rejected; {EXIT_REJECTED} some rows rejected "
        f"(the others imported); {EXIT_UNUSABLE} unusable manifest (nothing imported); "
        f"{EXIT_INTERRUPTED} interrupted by a storage or database failure (run it again "
        "to resume).",
    )
)


@app.command("import", help=IMPORT_HELP)
def import_manifest(
    manifest: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST", help="The manifest: .csv, .jsonl or .ndjson.", show_default=False
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; write nothing.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            dir_okay=False,
            help="Write the rejected rows to FILE as JSON Lines (line, reasons, values).",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=ingest.MAX_BATCH_SIZE,
            help="Documents per transaction: an interruption loses at most this many.",
        ),
    ] = ingest.DEFAULT_BATCH_SIZE,
) -> None:
    out, err = Console(), Console(stderr=True)
    settings = get_settings()
    with _open_report(report, err) as report_file:
        try:
            result = asyncio.run(_import(settings, manifest, dry_run, batch_size, err))
        except ingest.ManifestError as exc:
            err.print(f"[red]Unusable manifest:[/red] {escape(str(exc))}")
            raise typer.Exit(EXIT_UNUSABLE) from None
        except ingest.ImportInterrupted as exc:
            _print_interrupted(err, exc)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except KeyboardInterrupt:
            err.print("[yellow]Cancelled.[/yellow] Run the same command again to resume.")
            raise typer.Exit(EXIT_CANCELLED) from None
        if report_file is not None:
            ingest.write_rejections(report_file, result.rejected)
    _print_summary(out, result)
    raise typer.Exit(EXIT_REJECTED if result.rejected else EXIT_OK)


def _open_report(path: Path | None, err: Console) -> AbstractContextManager[TextIO | None]:
    """Open ``--report`` before importing, so a bad path fails before any work."""
    if path is None:
        return nullcontext()
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]Cannot write the report[/red] {escape(str(path))}: {exc.strerror}")
        raise typer.Exit(EXIT_UNUSABLE) from None


async def _import(
    settings: Settings, manifest: Path, dry_run: bool, batch_size: int, err: Console
) -> ingest.ImportReport:
    engine = db.make_engine(settings.database_url)
    sessionmaker = db.make_sessionmaker(engine)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=err)
    task = progress.add_task("Checking" if dry_run else "Importing", total=None)

    def advance(done: int, total: int) -> None:
        progress.start()  # on the first row: an unusable manifest shows no empty bar
        progress.update(task, completed=done, total=total)

    try:
        return await ingest.import_manifest(
            manifest=manifest,
            sessionmaker=sessionmaker,
            store=documents.make_blob_store(settings=settings, sessionmaker=sessionmaker),
            max_bytes=settings.import_max_bytes,
            dry_run=dry_run,
            batch_size=batch_size,
            actor=_actor(),
            progress=advance,
        )
    finally:
        progress.stop()
        await engine.dispose()


def _actor() -> str:
    """Who ran the import, for the journal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (some containers)
        return "cli"


def _print_summary(out: Console, result: ingest.ImportReport) -> None:
    imported = "would be imported" if result.dry_run else "imported"
    rejected = len(result.rejected)
    style = "red" if rejected else "green"
    out.print(
        f"[{style}]{result.imported} {imported}, {result.already_present} already present,"
        f" {rejected} rejected[/{style}] ({result.rows} rows in {escape(result.manifest.name)})"
    )
    if result.dry_run:
        out.print("Dry run: nothing was written.")
    if not rejected:
        return
    table = Table("Line", "Reason", title="Rejected rows", title_justify="left")
    for rejection in result.rejected[:SHOWN_REJECTIONS]:
        table.add_row(str(rejection.line), escape("\n".join(rejection.reasons)))
    out.print(table)
    if rejected > SHOWN_REJECTIONS:
        out.print(f"... and {rejected - SHOWN_REJECTIONS} more: use --report FILE for all.")


def _print_interrupted(err: Console, exc: ingest.ImportInterrupted) -> None:
    cause = exc.__cause__
    detail = str(cause).splitlines()[0] if cause is not None and str(cause) else ""
    where = f"at line {exc.line}" if exc.line else "before the first row"
    err.print(
        f"[red]Import interrupted {where}:[/red] {escape(f'{type(cause).__name__}: {detail}')}"
    )
    if exc.line is None:
        err.print("Is the database reachable and migrated (ensu db upgrade)?")
    err.print(
        f"Committed: {exc.report.imported}. Not committed, from the interrupted batch: {exc.lost}."
        " Run the same command again to resume: documents already stored are skipped."
    )
