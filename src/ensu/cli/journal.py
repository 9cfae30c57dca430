"""``ensu journal``: verify, resume, export, check bundles, purge (R-TR-2, R-TR-3, R-TR-4).

The journal lives in ``var/journal.db`` on SQLite (the main database on PostgreSQL); its
signing key under ``var/journal/``. See :mod:`ensu.audit.verify` for the operator
procedure after an integrity breach.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from ensu import db
from ensu.audit import keys, offline, retention, store
from ensu.audit import service as audit
from ensu.audit.export import export_bundle
from ensu.audit.integrity import ResumeRefused, open_alarm, resume
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.audit.verify import VerifyResult, verify
from ensu.audit.witness import CheckpointWitness, kept_path, read_kept
from ensu.audit.writer import JournalWriter, checkpoint_now
from ensu.config import Settings, get_settings

app = typer.Typer(
    help="The journal: a Merkle log of every call and event, with signed checkpoints.",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")
DATE_FORMATS = ["%Y-%m-%d"]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _run(work: Callable[[Settings, JournalStore], Awaitable[T]]) -> T:
    """Run ``work`` on the journal store; store and key errors exit with status 1."""
    settings = get_settings()

    async def main() -> T:
        journal = JournalStore.for_settings(settings)
        try:
            await journal.ensure_schema()
            return await work(settings, journal)
        finally:
            await journal.dispose()

    try:
        return asyncio.run(main())
    except (SQLAlchemyError, OSError, store.StoreError, keys.JournalKeyError) as exc:
        errors.print(f"[red]error:[/red] the journal store or key: {exc}")
        raise typer.Exit(1) from None


async def _record_event(
    settings: Settings, journal: JournalStore, tag: EventTag, details: dict[str, object]
) -> None:
    """Record an event (outbox of the main database), then relay it into the journal."""
    engine = db.make_engine(settings.database_url)
    try:
        sessionmaker = db.make_sessionmaker(engine)
        async with db.session_scope(sessionmaker) as session:
            await audit.record_event(session=session, tag=tag, actor=_actor(), details=details)
        writer = _writer(settings, journal)
        await writer.start()
        try:
            await audit.EventRelay(writer, sessionmaker).relay()
            await writer.checkpoint()
        finally:
            await writer.close()
    finally:
        await engine.dispose()


def _writer(settings: Settings, journal: JournalStore) -> JournalWriter:
    """A writer for a command: checkpoints on demand, kept outside the database."""
    signer = keys.load_or_create_signer(settings)
    kept = CheckpointWitness.for_settings(settings, journal, signer.verifier)
    return JournalWriter(journal, signer, checkpoint_interval=0, witness=kept)


def _kept(settings: Settings) -> str | None:
    """The checkpoint kept outside the database (R-TR-2), that ``verify`` compares."""
    return read_kept(kept_path(settings))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


@app.command("verify")
def verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify the whole journal: leaf hashes, tiles, checkpoint signatures, roots and
    consistency proofs, contiguous indices. Exit status 1 names the first problem."""

    async def work(settings: Settings, journal: JournalStore) -> VerifyResult:
        verifier = keys.load_verifier(settings)
        with _progress() as progress:
            task = progress.add_task("verifying", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await verify(
                journal,
                verifier,
                kept=_kept(settings),
                exchange_days=settings.journal_retention_days,
                progress=advance,
            )

    result = _run(work)
    if as_json:
        typer.echo(json.dumps(_result_json(result)))
    elif result.ok:
        latest = result.latest
        console.print(
            f"[green]journal verified[/green]: {result.size} leaves ({result.purged} purged), "
            f"{result.checkpoints} signed checkpoints"
            + (f", latest at size {latest.tree_size}" if latest else "")
            + (
                f"; the checkpoint kept outside the database ({result.kept}) holds"
                if result.kept is not None
                else "; no checkpoint kept outside the database to compare with"
            )
        )
    else:
        errors.print(f"[red]journal integrity problem[/red]: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


def _result_json(result: VerifyResult) -> dict[str, Any]:
    problem = result.problem
    return {
        "ok": result.ok,
        "size": result.size,
        "checkpoints": result.checkpoints,
        "purged": result.purged,
        "kept": result.kept,
        "problem": None
        if problem is None
        else {"code": problem.code, "index": problem.index, "message": problem.message},
    }


@app.command()
def status() -> None:
    """Size, latest checkpoint, verifier key and open integrity alarm."""

    async def work(settings: Settings, journal: JournalStore) -> None:
        verifier = keys.load_verifier(settings)
        async with journal.read() as connection:
            size = await store.size(connection)
            latest = await store.latest_checkpoint(connection)
            alarm = await open_alarm(connection)
        console.print(f"leaves      {size}")
        if latest is not None:
            console.print(f"checkpoint  size {latest.tree_size} at {latest.at:%Y-%m-%d %H:%M:%S}Z")
        typer.echo(f"key         {verifier.vkey}")
        console.print(f"alarm       {alarm or 'none'}")
        if alarm is not None:
            raise typer.Exit(1)

    _run(work)


@app.command()
def checkpoint() -> None:
    """Sign a checkpoint of the journal as it is now."""

    async def work(settings: Settings, journal: JournalStore) -> None:
        signer = keys.load_or_create_signer(settings)
        kept = CheckpointWitness.for_settings(settings, journal, signer.verifier)
        made = await checkpoint_now(journal, signer, witness=kept)
        typer.echo(f"checkpoint at size {made.tree_size}, root {made.root_hash.hex()}")

    _run(work)


@app.command("resume")
def resume_command(
    reason: Annotated[str, typer.Option(help="Why operations may resume (recorded).")],
) -> None:
    """After an integrity breach: verify the whole journal and, if it verifies, clear
    the alarm so that the API serves again (within a minute)."""

    async def work(settings: Settings, journal: JournalStore) -> int:
        verifier = keys.load_verifier(settings)
        try:
            _, cleared = await resume(
                journal,
                verifier,
                operator=_actor(),
                reason=reason,
                now=_now(),
                kept=_kept(settings),
                exchange_days=settings.journal_retention_days,
            )
        except ResumeRefused as exc:
            errors.print(f"[red]refused[/red]: the journal does not verify: {exc}")
            raise typer.Exit(1) from None
        details: dict[str, object] = {"cleared": cleared, "reason": reason}
        await _record_event(settings, journal, EventTag.AUDIT_JOURNAL_RESUMED, details)
        return cleared

    cleared = _run(work)
    console.print(f"journal verified; {cleared} alarm(s) cleared")


def _day(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


@app.command()
def export(
    consumer: Annotated[str, typer.Option(help="The téléservice (its ID_Teleservice).")],
    start: Annotated[
        dt.datetime, typer.Option("--from", formats=DATE_FORMATS, help="First day (UTC).")
    ],
    end: Annotated[
        dt.datetime, typer.Option("--to", formats=DATE_FORMATS, help="Last day, included (UTC).")
    ],
    out: Annotated[Path, typer.Option(help="The bundle to write (JSON).")],
    reference: Annotated[
        str | None,
        typer.Option(help="Only the calls of this case (their referenceDemande)."),
    ] = None,
) -> None:
    """Export a téléservice's records of a period with their inclusion proofs, a fresh
    signed checkpoint and the verifier key: `ensu journal check-bundle` checks it. With
    --reference, only the calls that carried that referenceDemande."""
    if end < start:
        errors.print("[red]error:[/red] --to is before --from")
        raise typer.Exit(2)

    async def work(settings: Settings, journal: JournalStore) -> int:
        signer = keys.load_or_create_signer(settings)
        with _progress() as progress:
            task = progress.add_task("proving", total=None)
            bundle = await export_bundle(
                journal,
                signer,
                id_teleservice=consumer,
                start=_day(start),
                end=_day(end) + dt.timedelta(days=1),
                now=_now(),
                reference=reference,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        out.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
        details: dict[str, object] = {
            "id_teleservice": consumer,
            "from": f"{start:%Y-%m-%d}",
            "to": f"{end:%Y-%m-%d}",
            "entries": len(bundle["entries"]),
        }
        if reference is not None:
            details["reference"] = reference
        await _record_event(settings, journal, EventTag.AUDIT_JOURNAL_EXPORTED, details)
        return len(bundle["entries"])

    count = _run(work)
    console.print(f"{count} records exported to {out}")


@app.command("check-bundle")
def check_bundle(
    bundle: Annotated[Path, typer.Argument(help="The bundle (JSON) to check.")],
    key: Annotated[
        Path | None,
        typer.Option(help="The producer's published verifier key (vkey file) to trust."),
    ] = None,
) -> None:
    """Check an investigation bundle offline: checkpoint signature, each record's leaf
    hash and inclusion proof, and that it matches the bundle's query.

    Needs no database, network or settings: the code (ensu.audit.offline, .note, .merkle)
    uses only Python's standard library and `cryptography`, and also runs as
    `python -m ensu.audit.offline BUNDLE [VKEY]`. Without --key the bundle's own key is
    used: compare its key hash with the one the producer published.
    """
    try:
        document = json.loads(bundle.read_text(encoding="utf-8"))
        vkey = key.read_text(encoding="utf-8").strip() if key is not None else None
    except (OSError, ValueError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    report = offline.check_bundle(document, vkey)
    for problem in report.problems:
        errors.print(f"[red]FAIL[/red] {problem}")
    if not report.ok:
        raise typer.Exit(1)
    assert report.checkpoint is not None
    trust = "the given key" if report.trusted_key else "the bundle's own key"
    console.print(
        f"[green]OK[/green] {report.verified} records ({report.purged} purged) proven in the "
        f"tree of {report.checkpoint.size} leaves, signed by {trust} {report.key_id}"
    )


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option(help="Count, change nothing.")] = False,
) -> None:
    """Empty the records past their retention (exchange data: ENSU_JOURNAL_RETENTION_DAYS;
    other events: six years). Their leaf hashes stay: the journal still verifies."""

    async def work(settings: Settings, journal: JournalStore) -> tuple[int, int]:
        now = _now()
        days = settings.journal_retention_days
        report = await retention.purge(journal, now=now, exchange_days=days, dry_run=dry_run)
        engine = db.make_engine(settings.database_url)
        try:
            async with db.session_scope(db.make_sessionmaker(engine)) as session:
                outbox = await retention.purge_outbox(
                    session=session, now=now, exchange_days=days, dry_run=dry_run
                )
        finally:
            await engine.dispose()
        if not dry_run:
            details: dict[str, object] = {
                **{str(k): v for k, v in report.purged.items()},
                "outbox": outbox,
                "retention_days": days,
            }
            await _record_event(settings, journal, EventTag.AUDIT_JOURNAL_PURGED, details)
        return report.total, outbox

    purged, outbox = _run(work)
    verb = "would purge" if dry_run else "purged"
    console.print(f"{verb} {purged} records (leaf hashes kept) and {outbox} outbox events")


@app.command()
def key(
    out: Annotated[Path | None, typer.Option(help="Also write the vkey to this file.")] = None,
) -> None:
    """Print the journal's verifier key (signed-note vkey) to publish to investigators."""
    settings = get_settings()
    try:
        verifier = keys.load_or_create_signer(settings).verifier
    except keys.JournalKeyError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(verifier.vkey)
    if out is not None:
        out.write_text(verifier.vkey + "\n")


@app.command()
def relay() -> None:
    """Append the events waiting in the outbox (recorded while the app was not running)."""

    async def work(settings: Settings, journal: JournalStore) -> int:
        engine = db.make_engine(settings.database_url)
        writer = _writer(settings, journal)
        await writer.start()
        try:
            count = await audit.EventRelay(writer, db.make_sessionmaker(engine)).relay()
            await writer.checkpoint()
            return count
        finally:
            await writer.close()
            await engine.dispose()

    console.print(f"{_run(work)} events appended to the journal")
