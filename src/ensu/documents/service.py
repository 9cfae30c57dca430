"""The documents feature's logic, read by the routes, the sandbox and the import.

Keyword-only functions over an ``AsyncSession``; other features call these, never the
tables. R-DATA-1 to R-DATA-5.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.config import BlobBackend, Settings
from ensu.consumers.perimeter import Perimeter
from ensu.documents.models import Document, Subject
from ensu.documents.reader import DocumentMeta, DocumentReader, PageFilter
from ensu.documents.storage import (
    BlobIntegrityError,
    BlobStore,
    DatabaseBlobStore,
    FilesystemBlobStore,
)

T = TypeVar("T")


def make_blob_store(
    *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> BlobStore:
    """The blob store the settings choose."""
    if settings.blob_backend is BlobBackend.DATABASE:
        return DatabaseBlobStore(sessionmaker)
    return FilesystemBlobStore(settings.blob_dir_path)


async def subject_id(
    *, session: AsyncSession, siren: str | None = None, idsp: str | None = None
) -> int | None:
    """The subject's row id, by SIREN or IDSP (exactly one), or ``None``."""
    if (siren is None) == (idsp is None):
        raise ValueError("exactly one of siren and idsp")
    column = Subject.siren if siren is not None else Subject.idsp
    return await session.scalar(select(Subject.id).where(column == (siren or idsp)))


async def ensure_subject(
    *, session: AsyncSession, siren: str | None, idsp: str | None, denomination: str
) -> int:
    """The subject's row id, created if absent (R-DATA-2)."""
    found = await subject_id(session=session, siren=siren, idsp=idsp)
    if found is not None:
        return found
    subject = Subject(siren=siren, idsp=idsp, denomination=denomination)
    session.add(subject)
    await session.flush()
    return subject.id


@dataclass(frozen=True, slots=True)
class NewDocument:
    """What ingestion knows of a document before it has a row."""

    code: str
    periode_debut: dt.date
    periode_fin: dt.date
    date_emission: dt.date
    sha256: bytes
    taille: int
    idensua: str
    docdistrib: str | None = None
    doccfs: str | None = None


async def find_by_natural_key(
    *, session: AsyncSession, subject: int, document: NewDocument
) -> Document | None:
    """The document with the same subject, code, period and content, if any."""
    return await session.scalar(
        select(Document).where(
            Document.subject_id == subject,
            Document.code == document.code,
            Document.periode_debut == document.periode_debut,
            Document.periode_fin == document.periode_fin,
            Document.sha256 == document.sha256,
        )
    )


def document_row(*, subject: int, document: NewDocument) -> Document:
    """The ``documents`` row of ``document`` for ``subject`` (one place, for every writer)."""
    return Document(
        subject_id=subject,
        code=document.code,
        periode_debut=document.periode_debut,
        periode_fin=document.periode_fin,
        date_emission=document.date_emission,
        sha256=document.sha256,
        taille=document.taille,
        idensua=document.idensua,
        docdistrib=document.docdistrib,
        doccfs=document.doccfs,
    )


async def add_document(
    *, session: AsyncSession, subject: int, document: NewDocument
) -> tuple[Document, bool]:
    """Insert ``document`` unless it exists; returns the row and whether it was created.

    The blob must already be in the store: a row never points at missing content.
    """
    existing = await find_by_natural_key(session=session, subject=subject, document=document)
    if existing is not None:
        return existing, False
    row = document_row(subject=subject, document=document)
    session.add(row)
    await session.flush()
    return row, True


async def read_content(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    document: DocumentMeta | Document,
    actor: str,
) -> bytes:
    """The document's verified PDF; a hash mismatch is an alert and serves nothing.

    The alert is committed in its own transaction, so that it survives the caller's
    rollback.
    """
    return await _alerting(sessionmaker, document, actor, store.get(document.sha256))


async def accel_name(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    store: FilesystemBlobStore,
    document: DocumentMeta | Document,
    actor: str,
) -> str:
    """The verified blob's path under the store, for ``X-Accel-Redirect``: the same
    integrity rule as :func:`read_content` (a mismatch is an alert, nothing is served)."""
    return await _alerting(sessionmaker, document, actor, store.verified_name(document.sha256))


async def _alerting(
    sessionmaker: async_sessionmaker[AsyncSession],
    document: DocumentMeta | Document,
    actor: str,
    read: Awaitable[T],
) -> T:
    try:
        return await read
    except BlobIntegrityError as exc:
        async with sessionmaker() as session, session.begin():
            await audit.record_event(
                session=session,
                tag=EventTag.DOCUMENTS_BLOB_INTEGRITY_FAILURE,
                actor=actor,
                details={
                    "idensua": document.idensua,
                    "expected": exc.expected.hex(),
                    "actual": exc.actual.hex(),
                },
            )
        raise


# --- Reading through the perimeter (R-DATA-5, R-GW-5) -------------------------------


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A document's metadata with its subject's identifier, as the routes render it."""

    document: DocumentMeta
    siren: str | None
    idsp: str | None


class IdentifierKind(enum.StrEnum):
    """The three kinds of document identification of R-DATA-3 (``typeIdentifiant``)."""

    IDENSUA = "IDENSUA"
    DOCDISTRIB = "DOCDISTRIB"
    DOCCFS = "DOCCFS"


async def get_document(
    *, reader: DocumentReader, kind: IdentifierKind, identifier: str, perimeter: Perimeter
) -> DocumentRecord | None:
    """The document so identified, or ``None`` when absent *or* outside the perimeter.

    The two cases are deliberately indistinguishable to the caller (R-GW-6).
    """
    found = await reader.one(kind.value, identifier)
    if found is None:
        return None
    document, siren, idsp = found
    if not perimeter.allows(
        code=document.code, debut=document.periode_debut, fin=document.periode_fin
    ):
        return None
    return DocumentRecord(document=document, siren=siren, idsp=idsp)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated ``GET /documents`` query, already checked against the perimeter."""

    perimeter: Perimeter
    siren: str | None
    idsp: str | None
    codes: frozenset[str]
    date_debut: dt.date
    date_fin: dt.date
    page: int
    taille: int


async def list_documents(
    *, reader: DocumentReader, query: ListQuery
) -> tuple[list[DocumentRecord], int]:
    """One page of the subject's documents whose period overlaps the query's, and the total.

    Only documents that the perimeter allows, whole, are counted and listed: the same rule
    as for one document, so a listed document is always readable (R-DATA-5).
    """
    field, value = ("siren", query.siren) if query.siren is not None else ("idsp", query.idsp)
    assert value is not None  # the query parser demands exactly one
    rows, total = await reader.page(
        PageFilter(
            subject_field=field,
            subject_value=value,
            codes=sorted(query.codes),
            date_debut=query.date_debut,
            date_fin=query.date_fin,
            period_start=query.perimeter.period_start,
            period_end=query.perimeter.period_end,
            limit=query.taille,
            offset=(query.page - 1) * query.taille,
        )
    )
    return [DocumentRecord(document=row, siren=query.siren, idsp=query.idsp) for row in rows], total


@dataclass(frozen=True, slots=True)
class SubjectSummary:
    """A subject and how many documents it has: the sandbox's test subjects, as the
    portal's developer page lists them."""

    siren: str | None
    idsp: str | None
    denomination: str
    documents: int


async def list_subjects(*, session: AsyncSession, limit: int = 20) -> list[SubjectSummary]:
    """The first ``limit`` subjects (by row id, so the same seed lists the same ones)."""
    counts = (
        select(Document.subject_id, func.count().label("n"))
        .group_by(Document.subject_id)
        .subquery()
    )
    rows = await session.execute(
        select(Subject.siren, Subject.idsp, Subject.denomination, counts.c.n)
        .outerjoin(counts, counts.c.subject_id == Subject.id)
        .order_by(Subject.id)
        .limit(limit)
    )
    return [
        SubjectSummary(siren=siren, idsp=idsp, denomination=name, documents=n or 0)
        for siren, idsp, name, n in rows
    ]
