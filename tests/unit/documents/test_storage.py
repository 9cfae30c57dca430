"""Blob stores (R-DATA-4): content-addressed, idempotent, and never serving a blob whose
hash does not match, which raises an alert event instead.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import BlobBackend, Settings
from ensu.documents import catalogue
from ensu.documents import service as documents
from ensu.documents.identifiers import new_idensua
from ensu.documents.models import Blob
from ensu.documents.storage import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    FilesystemBlobStore,
    digest,
)

pytestmark = pytest.mark.anyio

PDF = b"%PDF-1.7\n% fictive\n%%EOF\n"


@pytest.fixture(params=list(BlobBackend))
def store(
    request: pytest.FixtureRequest,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> BlobStore:
    chosen = settings.model_copy(update={"blob_backend": request.param})
    return documents.make_blob_store(settings=chosen, sessionmaker=sessionmaker)


async def _corrupt(store: BlobStore, name: bytes, sm: async_sessionmaker[AsyncSession]) -> None:
    if isinstance(store, FilesystemBlobStore):
        store.path_for(name).write_bytes(PDF + b"tampered")
        return
    async with sm() as session, session.begin():
        await session.execute(update(Blob).where(Blob.sha256 == name).values(content=b"x"))


async def test_put_is_content_addressed_and_idempotent(store: BlobStore) -> None:
    name = await store.put(PDF)
    assert name == digest(PDF)
    assert await store.put(PDF) == name
    assert await store.get(name) == PDF
    assert await store.exists(name)


async def test_missing_blob(store: BlobStore) -> None:
    with pytest.raises(BlobNotFoundError):
        await store.get(digest(b"never stored"))
    assert not await store.exists(digest(b"never stored"))


async def test_tampered_blob_is_never_served_and_raises_an_alert(
    store: BlobStore, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    name = await store.put(PDF)
    async with sessionmaker() as session, session.begin():
        await catalogue.seed(session=session)
        subject = await documents.ensure_subject(
            session=session, siren="732829320", idsp=None, denomination="Fictive SA"
        )
        row, created = await documents.add_document(
            session=session,
            subject=subject,
            document=documents.NewDocument(
                code="TVA-CA3",
                periode_debut=dt.date(2025, 1, 1),
                periode_fin=dt.date(2025, 1, 31),
                date_emission=dt.date(2025, 2, 20),
                sha256=name,
                taille=len(PDF),
                idensua=new_idensua(),
            ),
        )
        assert created
    await _corrupt(store, name, sessionmaker)
    with pytest.raises(BlobIntegrityError):
        await documents.read_content(
            sessionmaker=sessionmaker, store=store, document=row, actor="test"
        )
    async with sessionmaker() as session:
        tags = (await session.scalars(select(Event.tag))).all()
    assert tags == [EventTag.DOCUMENTS_BLOB_INTEGRITY_FAILURE]
