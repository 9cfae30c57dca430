"""Generating the sandbox (R-DATA-6): deterministic to the byte whatever the number of
workers, valid data covering the whole catalogue, idempotent, journaled, and clear errors.
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import BlobBackend, Settings
from ensu.documents import service as documents
from ensu.documents.catalogue import CODES
from ensu.documents.identifiers import is_valid_idsp, is_valid_siren
from ensu.documents.models import Document, DocumentCode, Family, Periodicity, Subject
from ensu.documents.storage import digest
from ensu.sandbox import pdf, service
from ensu.sandbox.errors import DatabaseNotReadyError, FontMissingError

pytestmark = pytest.mark.anyio

#: Small enough to be quick; four subjects include one without SIREN (index 3).
OPTIONS = service.GenerationOptions(subjects=4, seed=11, first_year=2025, last_year=2025)


async def _settings(tmp_path: Path, name: str, **changes: object) -> Settings:
    """Settings on a migrated SQLite database (Alembic runs its own loop: in a thread)."""
    settings = Settings(var_dir=tmp_path / name, **changes)  # type: ignore[arg-type]
    await asyncio.to_thread(db.upgrade, settings.database_url)
    return settings


async def _query(settings: Settings, statement: object) -> list[tuple[object, ...]]:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            return [tuple(row) for row in await session.execute(statement)]  # type: ignore[call-overload]
    finally:
        await engine.dispose()


async def _identities(settings: Settings) -> set[tuple[object, ...]]:
    return set(await _query(settings, select(Document.idensua, Document.sha256)))


async def test_the_same_seed_gives_the_same_documents_in_two_var_dirs(tmp_path: Path) -> None:
    """R-DATA-6: one worker (a thread) and two worker processes write the same bytes."""
    first, second = await _settings(tmp_path, "a"), await _settings(tmp_path, "b")
    one = await service.generate(settings=first, options=OPTIONS)
    two = await service.generate(settings=second, options=dataclasses.replace(OPTIONS, workers=2))
    assert one.documents_added == one.documents_planned == one.rendered > 0
    assert two.documents_added == one.documents_added
    identities = await _identities(first)
    assert len(identities) == one.documents_added
    assert await _identities(second) == identities
    for _, sha256 in identities:
        assert isinstance(sha256, bytes)
        name = sha256.hex()
        relative = Path(name[:2], name[2:4], name)
        blob = (first.blob_dir_path / relative).read_bytes()
        assert digest(blob) == sha256
        assert (second.blob_dir_path / relative).read_bytes() == blob

    other = await _settings(tmp_path, "c")
    await service.generate(
        settings=other, options=dataclasses.replace(OPTIONS, subjects=2, seed=12)
    )
    different = await _identities(other)
    assert {i for i, _ in different}.isdisjoint(i for i, _ in identities)
    assert {s for _, s in different}.isdisjoint(s for _, s in identities)


async def test_generated_rows_are_valid_cover_the_catalogue_and_are_journaled(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """R-DATA-1..4 on what the database holds: identifiers, families, codes, periods,
    blobs that verify; and one journal event for the run.
    """
    report = await service.generate(settings=settings, options=OPTIONS, actor="cli:test")
    async with sessionmaker() as session:
        subjects = (await session.scalars(select(Subject))).all()
        rows = (
            await session.execute(
                select(Document, DocumentCode.famille, DocumentCode.periodicite).join(
                    DocumentCode, DocumentCode.code == Document.code
                )
            )
        ).all()
        events = (await session.scalars(select(Event))).all()
    assert len(subjects) == OPTIONS.subjects == report.subjects_added
    assert all(is_valid_siren(s.siren) for s in subjects if s.siren is not None)
    assert [s.idsp for s in subjects if s.siren is None] != []
    assert all(is_valid_idsp(s.idsp) for s in subjects if s.idsp is not None)
    assert {row.Document.code for row in rows} == CODES
    assert {row.famille for row in rows} == set(Family)
    assert any(row.Document.docdistrib for row in rows)
    assert any(row.Document.doccfs for row in rows)
    for document, _, periodicity in rows:
        assert _length_in_days(document) == _expected_days(periodicity, document.periode_debut)
        assert document.date_emission > document.periode_fin
    store = documents.make_blob_store(settings=settings, sessionmaker=sessionmaker)
    for document, _, _ in rows:
        content = await store.get(document.sha256)
        assert len(content) == document.taille
        assert content.startswith(b"%PDF-")
    assert [(e.tag, e.actor) for e in events] == [(EventTag.SANDBOX_DATA_GENERATED, "cli:test")]
    assert events[0].details["subjects"] == OPTIONS.subjects
    assert events[0].details["documents"] == report.documents_added == len(rows)
    assert events[0].details["seed"] == OPTIONS.seed


def _length_in_days(document: Document) -> int:
    return (document.periode_fin - document.periode_debut).days + 1


def _expected_days(periodicity: Periodicity, start: dt.date) -> int:
    months = {
        Periodicity.MENSUELLE: 1,
        Periodicity.TRIMESTRIELLE: 3,
        Periodicity.ANNUELLE: 12,
        Periodicity.PONCTUELLE: 0,
    }[periodicity]
    if not months:
        return 1
    assert start.day == 1
    assert (start.month - 1) % months == 0
    return sum(calendar.monthrange(start.year, start.month + m)[1] for m in range(months))


async def test_running_the_same_seed_again_adds_nothing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Idempotence: the second run finds every document and renders none."""
    first = await service.generate(settings=settings, options=OPTIONS)
    second = await service.generate(settings=settings, options=OPTIONS)
    assert first.documents_added > 0
    assert (second.documents_added, second.subjects_added, second.rendered) == (0, 0, 0)
    assert second.documents_planned == first.documents_planned
    async with sessionmaker() as session:
        count = len((await session.scalars(select(Document.id))).all())
        details = (await session.scalars(select(Event.details).order_by(Event.id))).all()
    assert count == first.documents_added
    assert [d["documents"] for d in details] == [first.documents_added, 0]


async def test_a_larger_run_extends_a_smaller_one(tmp_path: Path) -> None:
    settings = await _settings(tmp_path, "var")
    small = await service.generate(
        settings=settings, options=dataclasses.replace(OPTIONS, subjects=2)
    )
    larger = await service.generate(
        settings=settings, options=dataclasses.replace(OPTIONS, subjects=3)
    )
    assert larger.subjects_added == 1
    assert (
        larger.rendered
        == larger.documents_added
        == larger.documents_planned - small.documents_added
    )


async def test_metadata_only_rows_point_at_a_stored_placeholder(tmp_path: Path) -> None:
    settings = await _settings(tmp_path, "var")
    options = dataclasses.replace(OPTIONS, metadata_only=True)
    report = await service.generate(settings=settings, options=options)
    assert report.rendered == 0
    assert report.documents_added == report.documents_planned > 0
    placeholder = pdf.placeholder()
    assert await _query(settings, select(Document.sha256).distinct()) == [(digest(placeholder),)]
    assert await _query(settings, select(Document.taille).distinct()) == [(len(placeholder),)]
    engine = db.make_engine(settings.database_url)
    try:
        store = documents.make_blob_store(
            settings=settings, sessionmaker=db.make_sessionmaker(engine)
        )
        assert await store.get(digest(placeholder)) == placeholder
    finally:
        await engine.dispose()


async def test_the_database_blob_store_receives_the_pdfs(tmp_path: Path) -> None:
    """With the database backend the worker sends the bytes back and the parent stores them."""
    settings = await _settings(tmp_path, "var", blob_backend=BlobBackend.DATABASE)
    options = dataclasses.replace(OPTIONS, subjects=2)
    report = await service.generate(settings=settings, options=options)
    engine = db.make_engine(settings.database_url)
    try:
        sessionmaker = db.make_sessionmaker(engine)
        store = documents.make_blob_store(settings=settings, sessionmaker=sessionmaker)
        for (sha256,) in await _query(settings, select(Document.sha256)):
            assert isinstance(sha256, bytes)
            assert (await store.get(sha256)).startswith(b"%PDF-")
    finally:
        await engine.dispose()
    assert report.documents_added > 0
    assert not settings.blob_dir_path.exists()


async def test_an_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    with pytest.raises(DatabaseNotReadyError, match="run `ensu db upgrade` first"):
        await service.generate(settings=settings, options=OPTIONS)
    with pytest.raises(DatabaseNotReadyError):
        await service.document_count(settings=settings)


async def test_a_missing_font_fails_before_anything_is_written(tmp_path: Path) -> None:
    settings = await _settings(tmp_path, "var", pdf_font=tmp_path / "absent.ttf")
    with pytest.raises(FontMissingError, match="fonts-dejavu-core"):
        await service.generate(settings=settings, options=OPTIONS)
    assert await _query(settings, select(Subject.id)) == []
    assert await service.document_count(settings=settings) == 0


class _Stop(Exception):
    pass


async def test_an_interrupted_run_keeps_its_rows_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    """Rows of the PDFs already rendered are written even when the run stops midway."""
    settings = await _settings(tmp_path, "var")

    def stop_midway(done: int, total: int) -> None:
        if done and done >= total // 2:
            raise _Stop

    with pytest.raises(_Stop):
        await service.generate(settings=settings, options=OPTIONS, on_progress=stop_midway)
    kept = await service.document_count(settings=settings)
    report = await service.generate(settings=settings, options=OPTIONS)
    assert 0 < kept < report.documents_planned
    assert report.rendered == report.documents_added == report.documents_planned - kept
