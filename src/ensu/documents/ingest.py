"""Import documents from a manifest: the logic behind ``ensu documents import`` (R-DATA-1..4).

Manifest format
---------------
A manifest lists one document per row, as CSV (``.csv``: a header row, then one row per
document; the delimiter is ``,`` or ``;``, guessed from the header) or as JSON Lines
(``.jsonl`` or ``.ndjson``: one JSON object per line). UTF-8, with or without a BOM.
Column and key names are matched without regard to case; blank lines are ignored.

==============  ========  ================================================================
name            required  value
==============  ========  ================================================================
siren           one of    9 digits with a valid Luhn check digit (R-DATA-2)
idsp            the two   6 to 16 capital letters or digits (when the subject has no SIREN)
denomination    no        the subject's name, used when the subject is new (200 characters)
codeDocument    yes       a code of the catalogue (``TVA-CA3``, ``AVIS-CFE`` ...) (R-DATA-1)
periodeDebut    yes       ISO date ``YYYY-MM-DD``, at most ``periodeFin`` (R-DATA-4)
periodeFin      yes       ISO date
dateEmission    yes       ISO date, not before ``periodeDebut``
fichier         yes       the PDF, relative to the manifest's folder (or absolute)
IDENSUA         no        64 or 128 base64url characters; generated when absent (R-DATA-3)
DOCDISTRIB      no        1 to 64 characters ``A-Z a-z 0-9 . _ -``, starting alphanumeric
DOCCFS          no        same format as DOCDISTRIB
==============  ========  ================================================================

The file must be a regular, non-empty file starting with ``%PDF-`` and no larger than
``ENSU_IMPORT_MAX_BYTES``. An identifier may be used by one row only, and must not
identify another document already in the store.

How an import runs
------------------
The whole manifest is read once first: a bad header, encoding or CSV quoting stops the
import before anything is written. Then rows go by batches (``batch_size`` rows, or
fewer when their PDFs pass ``BATCH_BYTES``). Every row is checked; a row with problems
is rejected with all of them and its file line (for CSV the header is line 1), and
nothing of it is written. The batch's good rows are compared with the store in three
queries; their PDFs go to the content-addressed blob store first (each write atomic),
then their rows are inserted in one transaction. So an interruption loses at most one
batch and never leaves a row pointing at missing content (an orphan blob may remain; it
is harmless and reused). Re-running the same manifest resumes: a document whose subject,
code, period and SHA-256 are already stored counts as *already present*, so running an
import twice changes nothing. One ``documents:import:completed`` event is journaled at
the end, with the counts and the manifest's SHA-256.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import json
import re
import stat
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.documents import catalogue
from ensu.documents import service as documents
from ensu.documents.identifiers import IDENSUA_PATTERN, is_valid_idsp, is_valid_siren, new_idensua
from ensu.documents.models import Document, DocumentCode, Subject
from ensu.documents.storage import BlobStore, digest

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
COLUMNS = (
    "siren",
    "idsp",
    "denomination",
    "codeDocument",
    "periodeDebut",
    "periodeFin",
    "dateEmission",
    "fichier",
    "IDENSUA",
    "DOCDISTRIB",
    "DOCCFS",
)
REQUIRED = ("codeDocument", "periodeDebut", "periodeFin", "dateEmission", "fichier")
DATES = ("periodeDebut", "periodeFin", "dateEmission")
IDENTIFIERS = ("IDENSUA", "DOCDISTRIB", "DOCCFS")
SECONDARY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
PDF_SIGNATURE = b"%PDF-"
DENOMINATION_MAX = 200
DEFAULT_BATCH_SIZE = 100
#: Bounds the SQL ``IN`` lists of a batch's queries (SQLite allows 32766 parameters).
MAX_BATCH_SIZE = 1000
#: A batch also ends after this much PDF content, which it holds in memory.
BATCH_BYTES = 64 * 1024 * 1024
#: Blob writes in flight at once: fsyncs overlap, the database pool is not exhausted.
PUT_CONCURRENCY = 8

_CANONICAL = {name.lower(): name for name in COLUMNS}
_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array"}

#: Called after each row with (rows done, rows in the manifest).
ProgressCallback = Callable[[int, int], None]


class ManifestError(Exception):
    """The manifest cannot be used at all (format, header, encoding): nothing is imported."""


class ImportInterrupted(Exception):
    """The store or the database failed mid-way; committed batches stay, re-run to resume."""

    def __init__(self, *, line: int | None, report: ImportReport, lost: int) -> None:
        where = f"at line {line}" if line else "before the first row"
        super().__init__(f"import interrupted {where}")
        self.line = line
        self.report = report
        #: Documents of the current batch that were rolled back (at most one batch).
        self.lost = lost


# --- Reading the manifest -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One row of the manifest: its first line in the file, its values, format problems."""

    line: int
    values: dict[str, str]
    problems: tuple[str, ...] = ()


def read_records(path: Path) -> Generator[Record, None, None]:
    """The manifest's rows, in order; raises :class:`ManifestError` if it is unusable."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ManifestError(
            f"{path.name}: unknown manifest format {path.suffix or '(no extension)'!r};"
            " expected .csv, .jsonl or .ndjson"
        )
    reader = _csv_records if kind == "csv" else _jsonl_records
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from reader(handle)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc


def survey(path: Path) -> tuple[int, str]:
    """The number of rows and the manifest's SHA-256 (hex).

    Reading every row before importing any proves the manifest usable: a bad header, a
    bad encoding or broken CSV quoting stops the import before anything is written.
    """
    rows = sum(1 for _ in read_records(path))
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(chunk)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return rows, hasher.hexdigest()


def _csv_records(handle: TextIO) -> Iterator[Record]:
    first = handle.readline()
    if not first.strip():
        raise ManifestError("the manifest is empty: a header row is expected on line 1")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    names = _header(next(csv.reader([first], delimiter=delimiter)))
    reader = csv.reader(handle, delimiter=delimiter)
    end = 1  # the header's line; reader.line_num counts the lines after it
    try:
        for cells in reader:
            start, end = end + 1, 1 + reader.line_num
            if any(cell.strip() for cell in cells):
                yield _csv_record(start, names, cells)
    except csv.Error as exc:
        raise ManifestError(f"line {1 + reader.line_num}: malformed CSV ({exc})") from exc


def _header(cells: list[str]) -> list[str]:
    names = [_CANONICAL.get(cell.strip().lower(), cell.strip()) for cell in cells]
    unknown = [name or "(empty)" for name in names if name not in COLUMNS]
    if unknown:
        raise ManifestError(
            f"line 1: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ManifestError(f"line 1: column(s) given twice: {', '.join(repeated)}")
    missing = [name for name in REQUIRED if name not in names]
    if "siren" not in names and "idsp" not in names:
        missing.insert(0, "siren or idsp")
    if missing:
        raise ManifestError(f"line 1: missing column(s): {', '.join(missing)}")
    return names


def _csv_record(line: int, names: list[str], cells: list[str]) -> Record:
    problems: tuple[str, ...] = ()
    if len(cells) > len(names):
        problems = (f"{len(cells)} values for {len(names)} columns",)
    values = {name: cell.strip() for name, cell in zip(names, cells, strict=False) if cell.strip()}
    return Record(line, values, problems)


def _jsonl_records(handle: TextIO) -> Iterator[Record]:
    for line, text in enumerate(handle, start=1):
        if text.strip():
            yield _json_record(line, text)


def _json_record(line: int, text: str) -> Record:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(line, {}, (f"invalid JSON: {exc.msg} (column {exc.colno})",))
    if not isinstance(data, dict):
        return Record(line, {}, ("a JSON object is expected",))
    values: dict[str, str] = {}
    problems: list[str] = []
    for key, value in data.items():
        name = _CANONICAL.get(key.lower())
        if name is None:
            problems.append(f"unknown key {_show(key)}")
        elif isinstance(value, str):
            if value.strip():
                values[name] = value.strip()
        elif value is not None:
            problems.append(f"{name}: a string is expected, not {_JSON_TYPES.get(type(value))}")
    return Record(line, values, tuple(problems))


def _show(value: str, limit: int = 40) -> str:
    """A value quoted for a message, cut when long (a manifest may hold anything)."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


# --- Checking a row without the database ----------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """A row that passed every check that needs no database, ready to be imported."""

    line: int
    siren: str | None
    idsp: str | None
    denomination: str
    document: documents.NewDocument
    explicit_idensua: bool

    def claimed_identifiers(self) -> dict[str, str]:
        """The identifiers the manifest asks for (a generated IDENSUA claims nothing)."""
        found = {"IDENSUA": self.document.idensua} if self.explicit_idensua else {}
        if self.document.docdistrib is not None:
            found["DOCDISTRIB"] = self.document.docdistrib
        if self.document.doccfs is not None:
            found["DOCCFS"] = self.document.doccfs
        return found

    def natural_key(self) -> bytes:
        """Subject, code, period and content, hashed small: the import's idempotence key."""
        doc = self.document
        subject = f"S{self.siren}" if self.siren is not None else f"I{self.idsp}"
        text = f"{subject}\0{doc.code}\0{doc.periode_debut}\0{doc.periode_fin}\0"
        return hashlib.blake2b(text.encode() + doc.sha256, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class RowCheck:
    """The outcome of :func:`check_record`: a row and its content, or problems."""

    record: Record
    problems: tuple[str, ...]
    row: CheckedRow | None = None
    content: bytes | None = field(default=None, repr=False)
    #: Well-formed identifiers the row names, to catch duplicates even on rejected rows.
    identifiers: dict[str, str] = field(default_factory=dict)


def check_record(
    record: Record, *, codes: frozenset[str], base_dir: Path, max_bytes: int
) -> RowCheck:
    """Every check of one row that needs no database, all problems listed (R-DATA-1..4)."""
    values = record.values
    problems = list(record.problems)
    siren, idsp = _check_subject(values, problems)
    denomination = values.get("denomination", "")
    if len(denomination) > DENOMINATION_MAX:
        problems.append(f"denomination is longer than {DENOMINATION_MAX} characters")
    code = _check_code(values, codes, problems)
    dates = _check_dates(values, problems)
    identifiers = _check_identifiers(values, problems)
    content = _check_file(values, base_dir, max_bytes, problems)
    if problems or code is None or dates is None or content is None:
        return RowCheck(record, tuple(problems), identifiers=identifiers)
    document = documents.NewDocument(
        code=code,
        periode_debut=dates[0],
        periode_fin=dates[1],
        date_emission=dates[2],
        sha256=digest(content),
        taille=len(content),
        idensua=identifiers.get("IDENSUA") or new_idensua(),
        docdistrib=identifiers.get("DOCDISTRIB"),
        doccfs=identifiers.get("DOCCFS"),
    )
    row = CheckedRow(record.line, siren, idsp, denomination, document, "IDENSUA" in identifiers)
    return RowCheck(record, (), row, content, identifiers)


def _check_subject(values: dict[str, str], problems: list[str]) -> tuple[str | None, str | None]:
    """Exactly one of SIREN (Luhn-valid) and IDSP (R-DATA-2)."""
    siren, idsp = values.get("siren"), values.get("idsp")
    if siren is None and idsp is None:
        problems.append("siren or idsp is required (exactly one)")
    elif siren is not None and idsp is not None:
        problems.append("siren and idsp are both given: exactly one is allowed")
    elif siren is not None and not is_valid_siren(siren):
        problems.append(f"siren {_show(siren)} is not a SIREN (9 digits, valid Luhn check digit)")
    elif idsp is not None and not is_valid_idsp(idsp):
        problems.append(f"idsp {_show(idsp)} is not an IDSP (6 to 16 capital letters or digits)")
    return siren, idsp


def _check_code(values: dict[str, str], codes: frozenset[str], problems: list[str]) -> str | None:
    """A code of the published catalogue (R-DATA-1)."""
    code = values.get("codeDocument")
    if code is None:
        problems.append("codeDocument is missing")
    elif code not in codes:
        problems.append(f"codeDocument {_show(code)} is not in the catalogue")
    else:
        return code
    return None


def _check_dates(
    values: dict[str, str], problems: list[str]
) -> tuple[dt.date, dt.date, dt.date] | None:
    """ISO dates; the period is ordered and the issue date not before it starts (R-DATA-4)."""
    debut, fin, emission = (_parse_date(name, values.get(name), problems) for name in DATES)
    if debut is not None and fin is not None and debut > fin:
        problems.append(f"periodeDebut {debut} is after periodeFin {fin}")
    if debut is not None and emission is not None and emission < debut:
        problems.append(f"dateEmission {emission} is before periodeDebut {debut}")
    if debut is None or fin is None or emission is None:
        return None
    return debut, fin, emission


def _parse_date(name: str, value: str | None, problems: list[str]) -> dt.date | None:
    if value is None:
        problems.append(f"{name} is missing")
        return None
    try:
        if ISO_DATE.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass  # well-shaped but impossible (2025-02-30): same message as any bad date
    problems.append(f"{name} {_show(value)} is not a date (YYYY-MM-DD)")
    return None


def _check_identifiers(values: dict[str, str], problems: list[str]) -> dict[str, str]:
    """The identifiers' formats (R-DATA-3); returns the well-formed ones."""
    found: dict[str, str] = {}
    for name in IDENTIFIERS:
        value = values.get(name)
        if value is None:
            continue
        pattern = IDENSUA_PATTERN if name == "IDENSUA" else SECONDARY_PATTERN
        if pattern.fullmatch(value):
            found[name] = value
        elif name == "IDENSUA":
            problems.append(
                f"IDENSUA must be 64 or 128 base64url characters (A-Z a-z 0-9 - _),"
                f" not {len(value)} characters {_show(value, 20)}"
            )
        else:
            problems.append(
                f"{name} {_show(value)} must be 1 to 64 characters A-Z a-z 0-9 . _ -,"
                " starting with a letter or digit"
            )
    return found


def _check_file(
    values: dict[str, str], base_dir: Path, max_bytes: int, problems: list[str]
) -> bytes | None:
    """A regular, non-empty file within the size limit that starts like a PDF (R-DATA-4)."""
    name = values.get("fichier")
    if name is None:
        problems.append("fichier is missing")
        return None
    path = base_dir / name  # an absolute ``name`` stays absolute
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            problems.append(f"fichier {_show(name)} is not a regular file")
            return None
        if status.st_size > max_bytes:
            problems.append(f"fichier {_show(name)} is larger than {max_bytes} bytes")
            return None
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        problems.append(f"fichier {_show(name)} cannot be read: {exc.strerror or exc}")
        return None
    except ValueError:  # a NUL in the name: no such path (found by tests/unit/test_fuzz_parsers)
        problems.append(f"fichier {_show(name)} is not a file name (a NUL character)")
        return None
    return _check_content(name, data, max_bytes, problems)


def _check_content(name: str, data: bytes, max_bytes: int, problems: list[str]) -> bytes | None:
    if not data:
        problems.append(f"fichier {_show(name)} is empty")
    elif len(data) > max_bytes:  # grew since stat()
        problems.append(f"fichier {_show(name)} is larger than {max_bytes} bytes")
    elif not data.startswith(PDF_SIGNATURE):
        problems.append(f"fichier {_show(name)} is not a PDF (it does not start with %PDF-)")
    else:
        return data
    return None


class ManifestIndex:
    """What earlier rows of the same manifest claimed: identifiers and documents, by line."""

    def __init__(self) -> None:
        self._identifiers: dict[tuple[str, str], int] = {}
        self._documents: dict[bytes, int] = {}

    def claim(self, check: RowCheck) -> list[str]:
        """Problems for what an earlier row already claimed; remembers this row's claims."""
        line = check.record.line
        problems = []
        for kind, value in check.identifiers.items():
            first = self._identifiers.setdefault((kind, value), line)
            if first != line:
                problems.append(f"{kind} {_show(value, 20)} is also used on line {first}")
        if check.row is not None:
            first = self._documents.setdefault(check.row.natural_key(), line)
            if first != line:
                problems.append(
                    f"same document as line {first} (same subject, code, period and content)"
                )
        return problems


# --- Checking rows against the database ----------------------------------------------


async def known_codes(
    *, sessionmaker: async_sessionmaker[AsyncSession], seed: bool
) -> frozenset[str]:
    """The catalogue's codes; an empty catalogue is seeded first when ``seed`` (R-DATA-1)."""
    async with sessionmaker() as session:
        codes = frozenset(await session.scalars(select(DocumentCode.code)))
        if codes:
            return codes
        if seed:
            await catalogue.seed(session=session)  # idempotent
            await session.commit()
    return catalogue.CODES


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the store says of a checked row: already present, or conflicting."""

    present: bool
    problems: tuple[str, ...] = ()


SubjectKey = tuple[str, str]
NaturalKey = tuple[int, str, dt.date, dt.date, bytes]


async def check_against_store(*, session: AsyncSession, rows: list[CheckedRow]) -> list[Verdict]:
    """One verdict per row, in order, from three queries for the whole batch (R-DATA-3).

    A row is present when its subject, code, period and content are stored. An identifier
    a row asks for must not identify another document, and a document already present
    must carry the identifiers the row asks for.
    """
    if not rows:
        return []
    subjects = await _subject_ids(session, rows)
    stored = await _stored_documents(session, rows, set(subjects.values()))
    taken = await _taken_identifiers(session, rows)
    return [_verdict(row, subjects.get(_subject_key(row)), stored, taken) for row in rows]


def _subject_key(row: CheckedRow) -> SubjectKey:
    return ("siren", row.siren) if row.siren is not None else ("idsp", row.idsp or "")


async def _subject_ids(session: AsyncSession, rows: list[CheckedRow]) -> dict[SubjectKey, int]:
    sirens = {row.siren for row in rows if row.siren is not None}
    idsps = {row.idsp for row in rows if row.idsp is not None}
    query = select(Subject.id, Subject.siren, Subject.idsp).where(
        or_(Subject.siren.in_(sirens), Subject.idsp.in_(idsps))
    )
    return {
        ("siren", siren) if siren is not None else ("idsp", idsp or ""): subject
        for subject, siren, idsp in await session.execute(query)
    }


async def _stored_documents(
    session: AsyncSession, rows: list[CheckedRow], subjects: set[int]
) -> dict[NaturalKey, Document]:
    if not subjects:
        return {}
    query = select(Document).where(
        Document.subject_id.in_(subjects),
        Document.sha256.in_({row.document.sha256 for row in rows}),
    )
    return {
        (doc.subject_id, doc.code, doc.periode_debut, doc.periode_fin, doc.sha256): doc
        for doc in await session.scalars(query)
    }


async def _taken_identifiers(
    session: AsyncSession, rows: list[CheckedRow]
) -> dict[tuple[str, str], int]:
    """Which stored document holds each identifier the rows ask for."""
    columns = {
        "IDENSUA": Document.idensua,
        "DOCDISTRIB": Document.docdistrib,
        "DOCCFS": Document.doccfs,
    }
    asked: dict[str, set[str]] = {kind: set() for kind in IDENTIFIERS}
    for row in rows:
        for kind, value in row.claimed_identifiers().items():
            asked[kind].add(value)
    conditions = [columns[kind].in_(values) for kind, values in asked.items() if values]
    if not conditions:
        return {}
    query = select(Document.id, *columns.values()).where(or_(*conditions))
    taken: dict[tuple[str, str], int] = {}
    for document, *values in await session.execute(query):
        for kind, value in zip(IDENTIFIERS, values, strict=True):
            if value is not None:
                taken[(kind, value)] = document
    return taken


def _verdict(
    row: CheckedRow,
    subject: int | None,
    stored: dict[NaturalKey, Document],
    taken: dict[tuple[str, str], int],
) -> Verdict:
    doc = row.document
    existing = None
    if subject is not None:
        existing = stored.get((subject, doc.code, doc.periode_debut, doc.periode_fin, doc.sha256))
    existing_id = existing.id if existing is not None else None
    claimed = row.claimed_identifiers()
    problems = [
        f"{kind} {_show(value, 20)} already identifies another document"
        for kind, value in claimed.items()  # in the order of IDENTIFIERS
        if taken.get((kind, value), existing_id) != existing_id
    ]
    if existing is not None:
        current = {
            "IDENSUA": existing.idensua,
            "DOCDISTRIB": existing.docdistrib,
            "DOCCFS": existing.doccfs,
        }
        problems.extend(
            f"this document is already present with another {kind}"
            for kind, value in claimed.items()
            if current[kind] != value
        )
    return Verdict(existing is not None, tuple(problems))


# --- The import -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected row: its file line, every reason, and its values as read."""

    line: int
    reasons: tuple[str, ...]
    values: dict[str, str]

    def as_json(self) -> dict[str, object]:
        return {"line": self.line, "reasons": list(self.reasons), "values": self.values}


@dataclass(slots=True)
class ImportReport:
    """Counts of an import (``imported`` means "would be imported" in a dry run)."""

    manifest: Path
    manifest_sha256: str
    rows: int
    dry_run: bool
    imported: int = 0
    already_present: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def write_rejections(handle: TextIO, rejections: Iterable[Rejection]) -> None:
    """The rejected rows as JSON Lines (``--report``)."""
    for rejection in rejections:
        handle.write(json.dumps(rejection.as_json(), ensure_ascii=False) + "\n")


async def import_manifest(
    *,
    manifest: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    max_bytes: int,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    actor: str = "cli",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import the manifest's good rows, report the others (R-DATA-1..4).

    Rows go by batches of at most ``batch_size`` rows (and about ``BATCH_BYTES`` of PDF):
    checked, compared with the store in three queries, their blobs written, their rows
    inserted in one transaction. Raises :class:`ManifestError` before writing anything
    when the manifest is unusable, and :class:`ImportInterrupted` when the store or the
    database fails mid-way (committed batches stay: re-run to resume).
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    manifest = await asyncio.to_thread(manifest.absolute)
    rows, sha256 = await asyncio.to_thread(survey, manifest)
    report = ImportReport(manifest, sha256, rows, dry_run)
    run = _Import(
        report=report,
        sessionmaker=sessionmaker,
        store=store,
        max_bytes=max_bytes,
        batch_size=batch_size,
        progress=progress,
    )
    await run.run(actor=actor)
    return report


class _Import:
    """One run: batches of rows checked, sorted, stored and committed in turn."""

    def __init__(
        self,
        *,
        report: ImportReport,
        sessionmaker: async_sessionmaker[AsyncSession],
        store: BlobStore,
        max_bytes: int,
        batch_size: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.report = report
        self.sessionmaker = sessionmaker
        self.store = store
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.progress = progress
        self.index = ManifestIndex()
        self.codes: frozenset[str] = frozenset()
        #: Where we are, for the interruption message, and what it would roll back.
        self.line: int | None = None
        self.staged = 0

    async def run(self, *, actor: str) -> None:
        try:
            self.codes = await known_codes(
                sessionmaker=self.sessionmaker, seed=not self.report.dry_run
            )
            with closing(read_records(self.report.manifest)) as records:
                done = 0
                while batch := await asyncio.to_thread(self._check_batch, records):
                    self.line = batch[0].record.line
                    await self._import_batch(batch)
                    done += len(batch)
                    if self.progress is not None:
                        self.progress(done, self.report.rows)
            if not self.report.dry_run:
                await self._journal(actor)
        except (OSError, SQLAlchemyError) as exc:
            raise ImportInterrupted(line=self.line, report=self.report, lost=self.staged) from exc

    def _check_batch(self, records: Iterator[Record]) -> list[RowCheck]:
        """The next rows checked without the database (in a worker thread: file I/O)."""
        batch: list[RowCheck] = []
        size = 0
        for record in records:
            check = check_record(
                record,
                codes=self.codes,
                base_dir=self.report.manifest.parent,
                max_bytes=self.max_bytes,
            )
            batch.append(check)
            size += len(check.content or b"")
            if len(batch) >= self.batch_size or size >= BATCH_BYTES:
                break
        return batch

    async def _import_batch(self, batch: list[RowCheck]) -> None:
        new = await self._sort(batch)
        if self.report.dry_run:
            self.report.imported += len(new)
            return
        self.staged = len(new)
        await self._store_blobs(new)  # blobs first: a row never points at missing content
        await self._insert([check.row for check in new if check.row is not None])
        self.staged = 0

    async def _sort(self, batch: list[RowCheck]) -> list[RowCheck]:
        """Count present rows, record rejected ones; returns the rows to import."""
        claims = [(check, [*check.problems, *self.index.claim(check)]) for check in batch]
        rows = [check.row for check, problems in claims if check.row and not problems]
        async with self.sessionmaker() as session:  # read only, closed before any write
            verdicts = await check_against_store(session=session, rows=rows)
        by_line = {row.line: verdict for row, verdict in zip(rows, verdicts, strict=True)}
        new = []
        for check, problems in claims:
            verdict = by_line.get(check.record.line, Verdict(False, ()))
            reasons = (*problems, *verdict.problems)
            if reasons:
                self.report.rejected.append(
                    Rejection(check.record.line, reasons, check.record.values)
                )
            elif verdict.present:
                self.report.already_present += 1
            else:
                new.append(check)
        return new

    async def _store_blobs(self, checks: list[RowCheck]) -> None:
        """Write the batch's blobs a few at a time (each write is atomic and fsynced)."""
        limit = asyncio.Semaphore(PUT_CONCURRENCY)

        async def put(content: bytes) -> None:
            async with limit:
                await self.store.put(content)

        stored = [(check, check.content) for check in checks if check.content is not None]
        results = await asyncio.gather(
            *(put(content) for _, content in stored), return_exceptions=True
        )
        for (check, _), result in zip(stored, results, strict=True):
            if isinstance(result, BaseException):
                self.line = check.record.line
                raise result

    async def _insert(self, rows: list[CheckedRow]) -> None:
        """The batch's rows in one transaction, in bulk.

        Should another import have stored one of them since :meth:`_sort` (a unique index
        refuses it), the batch is redone row by row with the idempotent
        ``add_document``, which counts such rows as already present.
        """
        try:
            async with self.sessionmaker() as session, session.begin():
                subjects = await self._subjects(session, rows)
                session.add_all(
                    documents.document_row(subject=subjects[_subject_key(r)], document=r.document)
                    for r in rows
                )
        except IntegrityError:
            await self._insert_one_by_one(rows)
            return
        self.report.imported += len(rows)

    async def _insert_one_by_one(self, rows: list[CheckedRow]) -> None:
        created = 0
        async with self.sessionmaker() as session, session.begin():
            subjects = await self._subjects(session, rows)
            for row in rows:
                self.line = row.line
                _, new = await documents.add_document(
                    session=session, subject=subjects[_subject_key(row)], document=row.document
                )
                created += new
        self.report.imported += created
        self.report.already_present += len(rows) - created

    async def _subjects(
        self, session: AsyncSession, rows: list[CheckedRow]
    ) -> dict[SubjectKey, int]:
        """The rows' subjects' ids, each created if absent (R-DATA-2)."""
        subjects: dict[SubjectKey, int] = {}
        for row in rows:
            key = _subject_key(row)
            if key not in subjects:
                subjects[key] = await documents.ensure_subject(
                    session=session, siren=row.siren, idsp=row.idsp, denomination=row.denomination
                )
        return subjects

    async def _journal(self, actor: str) -> None:
        report = self.report
        async with self.sessionmaker() as session, session.begin():
            await audit.record_event(
                session=session,
                tag=EventTag.DOCUMENTS_IMPORT_COMPLETED,
                actor=actor,
                details={
                    "manifest": str(report.manifest),
                    "manifest_sha256": report.manifest_sha256,
                    "rows": report.rows,
                    "imported": report.imported,
                    "already_present": report.already_present,
                    "rejected": len(report.rejected),
                },
            )
