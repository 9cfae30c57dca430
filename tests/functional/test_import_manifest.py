"""An operator imports a manifest of PDFs (R-DATA-1..4), on SQLite and PostgreSQL, with
blobs on the filesystem and in the database.

Bad rows are reported with their line and nothing of them is written; running the same
import twice changes nothing; an import interrupted mid-way resumes on re-run and ends
with exactly the expected documents; a dry run writes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fpdf import FPDF
from sqlalchemy import delete, event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ensu import cli, db
from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import BlobBackend, Settings, get_settings
from ensu.documents import catalogue, ingest
from ensu.documents import service as documents
from ensu.documents.models import Blob, Document, DocumentCode, Subject
from ensu.documents.storage import BlobStore, FilesystemBlobStore, digest

SIREN_A, SIREN_B, SIREN_NEW = "732829320", "552100554", "542051180"
IDSP = "P2025AB12"
IDENSUA_64 = "Q" * 62 + "-_"
IDENSUA_128 = "z9" * 64


def make_pdf(text: str) -> bytes:
    """A small real PDF (fpdf2, core font), the same bytes for the same text."""
    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text=text)
    return bytes(pdf.output())


def row(
    name: str, siren: str | None = SIREN_A, code: str = "TVA-CA3", month: int = 1, **extra: str
) -> dict[str, str]:
    """A good manifest row for ``pdf/<name>.pdf``, one month of 2025."""
    values = {
        "siren": siren or "",
        "denomination": f"Entreprise {name}",
        "codeDocument": code,
        "periodeDebut": dt.date(2025, month, 1).isoformat(),
        "periodeFin": dt.date(2025, month, 28).isoformat(),
        "dateEmission": dt.date(2025, month + 1, 15).isoformat(),
        "fichier": f"pdf/{name}.pdf",
    }
    return values | extra


def write_pdfs(folder: Path, *names: str) -> dict[str, bytes]:
    (folder / "pdf").mkdir(exist_ok=True)
    contents = {name: make_pdf(f"Document {name}") for name in names}
    for name, content in contents.items():
        (folder / "pdf" / f"{name}.pdf").write_bytes(content)
    return contents


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(key for values in rows for key in values))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(values) + "\n" for values in rows), encoding="utf-8")
    return path


def key(values: Mapping[str, str], content: bytes) -> tuple[str, str, str, str, str]:
    """What identifies an imported document: subject, code, period, content digest."""
    subject = values.get("siren") or values["idsp"]
    period = (values["periodeDebut"], values["periodeFin"])
    return (subject, values["codeDocument"], *period, digest(content).hex())


@dataclass(frozen=True)
class Stored:
    """What the database and the blob store hold after an import."""

    documents: dict[tuple[str, str, str, str, str], tuple[str, str | None, str | None]]
    subjects: set[str]
    blobs: set[str]
    events: list[dict[str, object]]
    codes: int


async def stored(settings: Settings) -> Stored:
    engine = db.make_engine(settings.database_url)
    sessionmaker = db.make_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            rows = await session.execute(
                select(Document, Subject).join(Subject, Subject.id == Document.subject_id)
            )
            found = {
                (
                    subject.siren or subject.idsp or "",
                    doc.code,
                    doc.periode_debut.isoformat(),
                    doc.periode_fin.isoformat(),
                    doc.sha256.hex(),
                ): (doc.idensua, doc.docdistrib, doc.doccfs)
                for doc, subject in rows
            }
            subjects = await session.execute(select(Subject.siren, Subject.idsp))
            events = await session.scalars(
                select(Event).where(Event.tag == EventTag.DOCUMENTS_IMPORT_COMPLETED)
            )
            codes = len((await session.scalars(select(DocumentCode.code))).all())
            db_blobs = {name.hex() for name in await session.scalars(select(Blob.sha256))}
            return Stored(
                documents=found,
                subjects={siren or idsp or "" for siren, idsp in subjects},
                blobs=db_blobs | _file_blobs(settings.blob_dir_path),
                events=[event.details for event in events],
                codes=codes,
            )
    finally:
        await engine.dispose()


def _file_blobs(root: Path) -> set[str]:
    return {path.name for path in root.rglob("*") if path.is_file()} if root.exists() else set()


async def assert_no_row_without_content(settings: Settings) -> None:
    """R-DATA-4: every stored document's content is in the store and matches its digest."""
    engine = db.make_engine(settings.database_url)
    sessionmaker = db.make_sessionmaker(engine)
    store = documents.make_blob_store(settings=settings, sessionmaker=sessionmaker)
    try:
        async with sessionmaker() as session:
            for document in await session.scalars(select(Document)):
                assert digest(await store.get(document.sha256)) == document.sha256
    finally:
        await engine.dispose()


@pytest.fixture(params=list(BlobBackend))
def import_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test's database with blobs on the filesystem, then in the database."""
    return settings.model_copy(update={"blob_backend": request.param})


@pytest.fixture
def run_cli(import_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunnerCall]:
    """Run ``ensu documents import`` against the test's settings."""
    monkeypatch.setenv("ENSU_VAR_DIR", str(import_settings.var_dir))
    monkeypatch.setenv("ENSU_DATABASE_URL", import_settings.database_url)
    monkeypatch.setenv("ENSU_BLOB_BACKEND", import_settings.blob_backend.value)
    get_settings.cache_clear()
    yield CliRunnerCall()
    get_settings.cache_clear()


class CliRunnerCall:
    def __call__(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli.app, ["documents", "import", *args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output


# --- Through the command ------------------------------------------------------------------


def test_bad_rows_are_reported_with_their_line_and_none_of_them_written(
    tmp_path: Path, run_cli: CliRunnerCall, import_settings: Settings
) -> None:
    """R-DATA-1..4: each bad row is reported with its line and all its reasons; nothing of
    it reaches the database or the blob store; the good rows are imported."""
    pdfs = write_pdfs(tmp_path, "a", "b", "c", "dup", "unknown-code", "late")
    (tmp_path / "pdf" / "text.pdf").write_bytes(b"not a PDF at all")
    good = [row("a"), row("b", month=2), row("c", siren=None, idsp=IDSP, DOCDISTRIB="D-1")]
    bad = [
        row("a", siren="732829321"),  # line 5: Luhn
        row("unknown-code", siren=SIREN_NEW, code="TVA-XXX"),  # line 6: a new subject, bad code
        row("missing"),  # line 7: no such file
        row("text"),  # line 8: not a PDF
        row("dup", month=3, DOCDISTRIB="D-1"),  # line 9: DOCDISTRIB of line 4
        row("late", periodeFin="2024-12-31", dateEmission="2024-06-01"),  # line 10: two reasons
    ]
    manifest = write_csv(tmp_path / "manifest.csv", good + bad)
    report = tmp_path / "rejected.jsonl"

    code, output = run_cli(str(manifest), "--report", str(report))

    assert code == 1
    assert "3 imported, 0 already present, 6 rejected" in output
    rejected = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(entry["line"], entry["reasons"]) for entry in rejected] == [
        (5, ["siren '732829321' is not a SIREN (9 digits, valid Luhn check digit)"]),
        (6, ["codeDocument 'TVA-XXX' is not in the catalogue"]),
        (7, ["fichier 'pdf/missing.pdf' cannot be read: No such file or directory"]),
        (8, ["fichier 'pdf/text.pdf' is not a PDF (it does not start with %PDF-)"]),
        (9, ["DOCDISTRIB 'D-1' is also used on line 4"]),
        (
            10,
            [
                "periodeDebut 2025-01-01 is after periodeFin 2024-12-31",
                "dateEmission 2024-06-01 is before periodeDebut 2025-01-01",
            ],
        ),
    ]
    assert rejected[1]["values"] == bad[1]  # the row as read, to fix and re-run
    for line in range(5, 11):
        assert f"│ {line} " in output

    after = asyncio.run(stored(import_settings))
    expected = {key(values, pdfs[values["fichier"][4:-4]]) for values in good}
    assert set(after.documents) == expected
    assert after.subjects == {SIREN_A, IDSP}  # no subject for the rejected new SIREN
    assert after.blobs == {digest(pdfs[name]).hex() for name in ("a", "b", "c")}
    assert after.events == [
        {
            "manifest": str(manifest),
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "rows": 9,
            "imported": 3,
            "already_present": 0,
            "rejected": 6,
        }
    ]
    asyncio.run(assert_no_row_without_content(import_settings))


def test_running_the_same_import_twice_changes_nothing(
    tmp_path: Path, run_cli: CliRunnerCall, import_settings: Settings
) -> None:
    """R-DATA-4: the import is idempotent on (subject, code, period, content)."""
    write_pdfs(tmp_path, "a", "b", "c")
    manifest = write_jsonl(
        tmp_path / "manifest.jsonl",
        [row("a"), row("b", siren=SIREN_B), row("c", month=4, IDENSUA=IDENSUA_64)],
    )

    first_code, first_output = run_cli(str(manifest))
    first = asyncio.run(stored(import_settings))
    second_code, second_output = run_cli(str(manifest))
    second = asyncio.run(stored(import_settings))

    assert (first_code, second_code) == (0, 0)
    assert "3 imported, 0 already present, 0 rejected" in first_output
    assert "0 imported, 3 already present, 0 rejected" in second_output
    assert len(first.documents) == 3
    assert second.documents == first.documents  # generated IDENSUA kept, nothing added
    assert (second.subjects, second.blobs) == (first.subjects, first.blobs)
    assert [(event["imported"], event["already_present"]) for event in second.events] == [
        (3, 0),
        (0, 3),
    ]


def test_a_dry_run_writes_nothing_and_predicts_the_import(
    tmp_path: Path, run_cli: CliRunnerCall, import_settings: Settings
) -> None:
    """A dry run checks every row and writes nothing: no subject, document, blob or
    journal event."""
    write_pdfs(tmp_path, "a", "b")
    manifest = write_csv(
        tmp_path / "manifest.csv", [row("a"), row("b", code="NOPE"), row("b", month=5)]
    )

    before = asyncio.run(stored(import_settings))
    code, output = run_cli(str(manifest), "--dry-run")

    assert code == 1
    assert "2 would be imported, 0 already present, 1 rejected" in output
    assert "Dry run: nothing was written." in output
    assert asyncio.run(stored(import_settings)) == before
    assert not before.documents

    code, output = run_cli(str(manifest))
    assert code == 1
    assert "2 imported, 0 already present, 1 rejected" in output


@pytest.mark.parametrize(
    "case",
    [
        ("manifest.txt", "siren\n", "unknown manifest format '.txt'"),
        ("manifest.csv", "siren,fichier\n", "missing column(s): codeDocument"),
        ("manifest.csv", "", "the manifest is empty"),
        ("absent.csv", None, "cannot be read"),
    ],
)
def test_an_unusable_manifest_exits_2_and_writes_nothing(
    tmp_path: Path,
    run_cli: CliRunnerCall,
    import_settings: Settings,
    case: tuple[str, str | None, str],
) -> None:
    name, content, message = case
    manifest = tmp_path / name
    if content is not None:
        manifest.write_text(content)
    before = asyncio.run(stored(import_settings))
    code, output = run_cli(str(manifest))
    assert code == 2
    assert "Unusable manifest" in output
    assert message in " ".join(output.split())  # the console may wrap long messages
    assert asyncio.run(stored(import_settings)) == before


def test_a_failing_store_exits_3_and_says_how_to_resume(
    tmp_path: Path,
    run_cli: CliRunnerCall,
    import_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_pdfs(tmp_path, "a", "b")
    manifest = write_csv(tmp_path / "manifest.csv", [row("a"), row("b", month=2)])

    def failing_store(*, settings: Settings, sessionmaker: object) -> BlobStore:
        return FailingStore(FilesystemBlobStore(settings.blob_dir_path), fail_on=2)

    monkeypatch.setattr(documents, "make_blob_store", failing_store)
    code, output = run_cli(str(manifest), "--batch-size", "1")

    assert code == 3
    flat = " ".join(output.split())
    assert "Import interrupted at line 3: OSError: [Errno 28] No space left on device" in flat
    assert "Committed: 1. Not committed, from the interrupted batch: 1." in flat
    assert "Run the same command again to resume" in flat


# --- Through the service ------------------------------------------------------------------


class FailingStore:
    """A blob store whose ``fail_on``-th write fails, as a full disk would."""

    def __init__(self, inner: BlobStore, fail_on: int) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.writes = 0

    async def put(self, data: bytes) -> bytes:
        self.writes += 1
        if self.writes == self.fail_on:
            raise OSError(28, "No space left on device")
        return await self.inner.put(data)

    async def get(self, sha256: bytes) -> bytes:
        return await self.inner.get(sha256)

    async def exists(self, sha256: bytes) -> bool:
        return await self.inner.exists(sha256)


@contextmanager
def fail_on_second_document_flush() -> Iterator[None]:
    """The database fails once the second batch's documents are sent, before the commit."""
    flushes = 0

    def after_flush(session: Session, _context: object) -> None:
        nonlocal flushes
        if any(isinstance(instance, Document) for instance in session.new):
            flushes += 1
            if flushes == 2:
                raise OperationalError("INSERT INTO documents", {}, Exception("connection lost"))

    event.listen(Session, "after_flush", after_flush)
    try:
        yield
    finally:
        event.remove(Session, "after_flush", after_flush)


@pytest.fixture
async def service_sessionmaker(
    import_settings: Settings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(import_settings.database_url)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def run_import(
    manifest: Path,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore | None = None,
    batch_size: int = ingest.DEFAULT_BATCH_SIZE,
) -> ingest.ImportReport:
    return await ingest.import_manifest(
        manifest=manifest,
        sessionmaker=sessionmaker,
        store=store or documents.make_blob_store(settings=settings, sessionmaker=sessionmaker),
        max_bytes=settings.import_max_bytes,
        batch_size=batch_size,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["blob write", "row insert"])
async def test_an_interrupted_import_resumes_to_exactly_the_expected_set(
    tmp_path: Path,
    import_settings: Settings,
    service_sessionmaker: async_sessionmaker[AsyncSession],
    failure: str,
) -> None:
    """R-DATA-4: an interruption loses at most the current batch, never leaves a row
    without its content, and re-running the same import completes it exactly."""
    names = [f"d{index}" for index in range(7)]
    pdfs = write_pdfs(tmp_path, *names)
    rows = [row(name, month=1 + index) for index, name in enumerate(names)]
    manifest = write_csv(tmp_path / "manifest.csv", rows)
    store = documents.make_blob_store(settings=import_settings, sessionmaker=service_sessionmaker)
    if failure == "blob write":
        store = FailingStore(store, fail_on=5)  # rows 1-3 committed, row 4 stored, row 5 fails
        with pytest.raises(ingest.ImportInterrupted) as interrupted:
            await run_import(manifest, import_settings, service_sessionmaker, store, batch_size=3)
        assert interrupted.value.line == 6  # row 5, whose blob write failed
    else:
        with (
            fail_on_second_document_flush(),
            pytest.raises(ingest.ImportInterrupted) as interrupted,
        ):
            await run_import(manifest, import_settings, service_sessionmaker, store, batch_size=3)
        assert interrupted.value.line == 5  # the batch of rows 4-6 (lines 5-7)

    everything = {key(values, pdfs[name]) for values, name in zip(rows, names, strict=True)}
    first_batch = {key(values, pdfs[name]) for values, name in zip(rows[:3], names, strict=False)}
    after_failure = await stored(import_settings)
    assert set(after_failure.documents) == first_batch
    assert interrupted.value.report.imported == 3
    assert after_failure.events == []  # the journal says "completed" only when it is
    await assert_no_row_without_content(import_settings)

    report = await run_import(manifest, import_settings, service_sessionmaker, batch_size=3)

    assert (report.imported, report.already_present, report.rejected) == (4, 3, [])
    final = await stored(import_settings)
    assert set(final.documents) == everything
    assert final.blobs == {digest(content).hex() for content in pdfs.values()}
    await assert_no_row_without_content(import_settings)


@pytest.mark.anyio
async def test_identifiers_are_kept_and_never_shared_with_stored_documents(
    tmp_path: Path,
    import_settings: Settings,
    service_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """R-DATA-3: explicit IDENSUA, DOCDISTRIB and DOCCFS are stored as given; a later
    manifest may not give them to another document, nor other ones to a stored document."""
    pdfs = write_pdfs(tmp_path, "a", "b", "c", "d")
    first = write_jsonl(
        tmp_path / "first.jsonl",
        [
            row("a", IDENSUA=IDENSUA_64, DOCDISTRIB="DIST-1", DOCCFS="CFS-1"),
            row("b", siren=None, idsp=IDSP, IDENSUA=IDENSUA_128),
        ],
    )
    report = await run_import(first, import_settings, service_sessionmaker)
    assert (report.imported, report.rejected) == (2, [])
    after = await stored(import_settings)
    assert after.documents[key(row("a"), pdfs["a"])] == (IDENSUA_64, "DIST-1", "CFS-1")
    assert after.documents[key(row("b", idsp=IDSP, siren=None), pdfs["b"])] == (
        IDENSUA_128,
        None,
        None,
    )

    second = write_jsonl(
        tmp_path / "second.jsonl",
        [
            row("c", month=2, DOCDISTRIB="DIST-1"),  # line 1: taken by "a"
            row("a", IDENSUA="R" * 64),  # line 2: "a" is stored under another IDENSUA
            row("d", month=3, IDENSUA=IDENSUA_128, DOCCFS="CFS-1"),  # line 3: both taken
            row("c", month=4, DOCDISTRIB="DIST-2"),  # line 4: new
            row("b", siren=None, idsp=IDSP),  # line 5: present (no identifier asked)
        ],
    )
    report = await run_import(second, import_settings, service_sessionmaker)

    assert (report.imported, report.already_present) == (1, 1)
    assert [(rejection.line, rejection.reasons) for rejection in report.rejected] == [
        (1, ("DOCDISTRIB 'DIST-1' already identifies another document",)),
        (2, ("this document is already present with another IDENSUA",)),
        (
            3,
            (
                f"IDENSUA '{IDENSUA_128[:20]}…' already identifies another document",
                "DOCCFS 'CFS-1' already identifies another document",
            ),
        ),
    ]
    final = await stored(import_settings)
    assert len(final.documents) == 3
    assert final.documents[key(row("c", month=4), pdfs["c"])][1:] == ("DIST-2", None)


async def reseed(settings: Settings) -> None:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.make_sessionmaker(engine)() as session, session.begin():
            await catalogue.seed(session=session)
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_the_catalogue_is_seeded_when_empty_and_batches_are_bounded_in_bytes(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    import_settings: Settings,
    service_sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R-DATA-1: an empty catalogue (the migrations seed it) is seeded before the codes
    are checked, except in a dry run. A batch also ends once its PDFs reach BATCH_BYTES
    (they are held in memory), and progress is reported after each batch."""
    write_pdfs(tmp_path, "a", "b")
    manifest = write_csv(tmp_path / "m.csv", [row("a", code="AVIS-CFE"), row("b", code="AMR")])
    async with service_sessionmaker() as session, session.begin():
        await session.execute(delete(DocumentCode))  # as a database made without migrations
    request.addfinalizer(lambda: asyncio.run(reseed(import_settings)))  # shared PostgreSQL
    monkeypatch.setattr(ingest, "BATCH_BYTES", 1)
    seen: list[tuple[int, int]] = []
    store = documents.make_blob_store(settings=import_settings, sessionmaker=service_sessionmaker)
    dry = await ingest.import_manifest(
        manifest=manifest,
        sessionmaker=service_sessionmaker,
        store=store,
        max_bytes=import_settings.import_max_bytes,
        dry_run=True,
    )
    assert (dry.imported, dry.rejected) == (2, [])  # checked against the code's catalogue
    assert (await stored(import_settings)).codes == 0  # a dry run seeds nothing

    report = await ingest.import_manifest(
        manifest=manifest,
        sessionmaker=service_sessionmaker,
        store=store,
        max_bytes=import_settings.import_max_bytes,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert report.imported == 2
    assert seen == [(1, 2), (2, 2)]
    assert (await stored(import_settings)).codes == len(catalogue.CATALOGUE)


@pytest.mark.anyio
async def test_rows_stored_meanwhile_by_another_import_count_as_already_present(
    tmp_path: Path,
    import_settings: Settings,
    service_sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two imports racing: rows the other one committed after this one compared its batch
    with the store are refused by the unique index, then counted as already present."""
    pdfs = write_pdfs(tmp_path, "a", "b", "c")
    rows = [row("a"), row("b", month=2), row("c", siren=SIREN_B)]
    await run_import(
        write_csv(tmp_path / "other.csv", rows[:2]), import_settings, service_sessionmaker
    )

    async def blind(
        *, session: AsyncSession, rows: list[ingest.CheckedRow]
    ) -> list[ingest.Verdict]:
        return [ingest.Verdict(present=False) for _ in rows]  # as if compared just before

    monkeypatch.setattr(ingest, "check_against_store", blind)
    report = await run_import(
        write_csv(tmp_path / "manifest.csv", rows), import_settings, service_sessionmaker
    )

    assert (report.imported, report.already_present, report.rejected) == (1, 2, [])
    final = await stored(import_settings)
    assert set(final.documents) == {key(values, pdfs[values["fichier"][4:-4]]) for values in rows}
    assert final.subjects == {SIREN_A, SIREN_B}
