"""``ensu sandbox``: the sandbox's fictive data (CGU BAS, R-DATA-6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ensu.config import Settings, get_settings
from ensu.sandbox.errors import SandboxError

if TYPE_CHECKING:
    from ensu.sandbox.service import GenerationOptions, GenerationReport

T = TypeVar("T")

app = typer.Typer(
    help="Fictive data for the sandbox (bac à sable): subjects, documents and their PDFs.",
    no_args_is_help=True,
)
err = Console(stderr=True)
out = Console()


def _actor() -> str:
    """Who generated the data, for the journal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (some containers)
        return "cli"


def _last_year() -> int:
    return dt.datetime.now(dt.UTC).year - 1


@app.command()
def generate(
    *,
    subjects: Annotated[
        int, typer.Option(min=1, help="Number of fictive companies (about 10 % without SIREN).")
    ] = 50,
    seed: Annotated[
        int, typer.Option(help="The same seed gives the same data and byte-identical PDFs.")
    ] = 1,
    years: Annotated[
        int, typer.Option(min=1, max=30, help="Number of calendar years of documents.")
    ] = 3,
    until: Annotated[
        int | None,
        typer.Option(min=1990, max=2100, help="Last calendar year covered (default: last year)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes rendering PDFs (default: the number of CPUs)."),
    ] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the database holds documents.")
    ] = False,
    metadata_only: Annotated[
        bool,
        typer.Option(
            "--metadata-only",
            help="Rows only, all pointing at one stored placeholder PDF (for volume tests).",
        ),
    ] = False,
) -> None:
    """Generate fictive subjects and documents (every family and code) with their PDFs.

    Deterministic and idempotent: running the same seed again adds nothing.
    """
    # Imported here: fpdf2 and fontTools take a second to import, other commands need neither.
    from ensu.sandbox import service  # noqa: PLC0415

    settings = get_settings()
    last = until if until is not None else _last_year()
    options = service.GenerationOptions(
        subjects=subjects,
        seed=seed,
        first_year=last - years + 1,
        last_year=last,
        workers=workers or os.cpu_count() or 1,
        metadata_only=metadata_only,
    )
    try:
        existing = asyncio.run(service.document_count(settings=settings))  # tables exist?
        if if_empty and existing:
            out.print(f"The database already holds {existing:,} documents: nothing generated.")
            return
        report = _run_with_progress(settings, options)
    except SandboxError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to complete (it is idempotent)")
        raise typer.Exit(130) from None
    _print_report(options, report)


def _run_with_progress(settings: Settings, options: GenerationOptions) -> GenerationReport:
    from ensu.sandbox import service  # noqa: PLC0415 - see generate()

    label = "PDF" if not options.metadata_only else "rows"
    with Progress(
        TextColumn(f"[bold]sandbox[/bold] {label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task("documents", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        generation = service.generate(
            settings=settings, options=options, on_progress=advance, actor=_actor()
        )
        return asyncio.run(_stoppable(generation))


async def _stoppable(generation: Coroutine[Any, Any, T]) -> T:
    """Run ``generation``; SIGTERM stops it like Ctrl-C, so that the worker pool is shut
    down (a plain SIGTERM would leave the workers orphaned) and the rows written so far
    are kept for the next, idempotent, run.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(generation)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _print_report(options: GenerationOptions, report: GenerationReport) -> None:
    out.print(
        f"{report.documents_added:,} documents added ({report.documents_planned:,} planned) and "
        f"{report.subjects_added:,} subjects added ({report.subjects:,} planned), seed "
        f"{options.seed}, years {options.first_year}–{options.last_year}, "
        f"in {report.seconds:.1f} s."
    )
    if report.rendered:
        per_pdf = report.render_seconds / report.rendered * 1000
        out.print(
            f"{report.rendered:,} PDFs rendered by {options.workers} worker(s): "
            f"{per_pdf:.1f} ms of CPU per PDF."
        )
