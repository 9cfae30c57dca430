"""Generation of the sandbox's fictive data: subjects, documents, PDFs (R-DATA-6).

:func:`generate` seeds the catalogue, writes the subjects, renders the PDFs in worker
processes (each worker stores its blobs), writes the rows in batches from this process,
and records one journal event. The same seed gives the same identifiers and byte-identical
PDFs, whatever the number of workers; running a seed again adds nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ensu import db
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.config import BlobBackend, Settings
from ensu.documents import catalogue
from ensu.documents import service as documents
from ensu.documents.storage import BlobStore, digest
from ensu.sandbox import pdf, store
from ensu.sandbox.errors import DatabaseNotReadyError
from ensu.sandbox.plan import DocumentPlan, Plan

#: Documents per task sent to a worker: small enough for a smooth progress bar, large
#: enough that inter-process traffic stays negligible.
CHUNK = 24
#: Tasks queued per worker: keeps the workers busy while bounding memory.
QUEUE_PER_WORKER = 3
ROW_BATCH = 2_000
#: Planned documents looked up at once to skip those already in the database.
LOOKUP = 20 * CHUNK

Chunk = tuple[DocumentPlan, ...]
#: Called with (documents done, documents planned).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    subjects: int
    seed: int
    first_year: int
    last_year: int
    workers: int = 1
    metadata_only: bool = False


@dataclass(frozen=True, slots=True)
class GenerationReport:
    subjects: int
    subjects_added: int
    documents_planned: int
    documents_added: int
    rendered: int
    render_seconds: float  # CPU time spent rendering PDFs, summed over the workers
    seconds: float


async def document_count(*, settings: Settings) -> int:
    """How many documents the database holds (for ``--if-empty``)."""
    engine = db.make_engine(settings.database_url)
    try:
        await _require_tables(engine)
        async with db.make_sessionmaker(engine)() as session:
            return await store.count_documents(session=session)
    finally:
        await engine.dispose()


async def generate(
    *,
    settings: Settings,
    options: GenerationOptions,
    on_progress: ProgressCallback | None = None,
    actor: str = "cli",
) -> GenerationReport:
    """Generate the sandbox data of ``options`` into the database and blob store."""
    engine = db.make_engine(settings.database_url)
    try:
        await _require_tables(engine)
        with tempfile.TemporaryDirectory(prefix="ensu-sandbox-") as directory:
            # Fonts first: a missing font fails before anything is written.
            fonts = None
            if not options.metadata_only:
                fonts = pdf.prepare_fonts(regular=settings.pdf_font, directory=Path(directory))
            run = _Run(
                settings=settings,
                options=options,
                sessionmaker=db.make_sessionmaker(engine),
                actor=actor,
            )
            return await run.execute(fonts, on_progress or (lambda done, total: None))
    finally:
        await engine.dispose()


async def _require_tables(engine: AsyncEngine) -> None:
    missing = await store.missing_tables(engine)
    if missing:
        raise DatabaseNotReadyError(
            f"the database lacks the tables {', '.join(missing)}: run `ensu db upgrade` first"
        )


class _Run:
    """One generation: the plan, the stores, and the counters of what was written."""

    def __init__(
        self,
        *,
        settings: Settings,
        options: GenerationOptions,
        sessionmaker: async_sessionmaker[AsyncSession],
        actor: str,
    ) -> None:
        self.settings = settings
        self.actor = actor
        self.options = options
        self.sessionmaker = sessionmaker
        self.plan = Plan(
            seed=options.seed, first_year=options.first_year, last_year=options.last_year
        )
        self.blobs: BlobStore = documents.make_blob_store(
            settings=settings, sessionmaker=sessionmaker
        )
        self.started = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.subject_ids: dict[store.SubjectKey, int] = {}
        self.done = 0
        self.rendered = 0
        self.render_seconds = 0.0
        self.progress: Callable[[], None] = lambda: None

    async def execute(
        self, fonts: pdf.FontFiles | None, on_progress: ProgressCallback
    ) -> GenerationReport:
        subjects = self.plan.subjects(self.options.subjects)
        async with db.session_scope(self.sessionmaker) as session:
            documents_before = await store.count_documents(session=session)
            subjects_before = await store.count_subjects(session=session)
            await catalogue.seed(session=session)
            self.subject_ids = await store.ensure_subjects(session=session, subjects=subjects)
        # Planning twice (count, then stream) costs microseconds per document and keeps
        # memory flat for millions of documents.
        total = sum(len(self.plan.documents(subject)) for subject in subjects)
        self.progress = lambda: on_progress(self.done, total)
        self.progress()
        planned = (doc for subject in subjects for doc in self.plan.documents(subject))
        try:
            if fonts is None:
                await self._placeholders(self._absent(planned))
            else:
                await self._render(self._absent(planned), fonts)
        finally:
            await self._flush()  # interrupted too: what is rendered is kept
        return await self._finish(subjects_before, documents_before, total)

    async def _absent(self, planned: Iterable[DocumentPlan]) -> AsyncIterator[Chunk]:
        """Chunks of the planned documents that the database lacks: a re-run (or the end
        of an interrupted run) renders nothing twice.
        """
        for batch in _chunks(planned, LOOKUP):
            async with self.sessionmaker() as session:
                known = await store.existing_idensua(
                    session=session, idensuas=[document.idensua for document in batch]
                )
            fresh = [document for document in batch if document.idensua not in known]
            if len(fresh) < len(batch):
                self.done += len(batch) - len(fresh)
                self.progress()
            for chunk in _chunks(fresh, CHUNK):
                yield chunk

    async def _placeholders(self, chunks: AsyncIterator[Chunk]) -> None:
        """``--metadata-only``: every row describes one tiny stored placeholder PDF."""
        content = pdf.placeholder()
        await self.blobs.put(content)
        stand_in = pdf.Rendered(sha256=digest(content), taille=len(content), content=None)
        async for chunk in chunks:
            for document in chunk:
                await self._add(document, stand_in)
            self.progress()

    async def _render(self, chunks: AsyncIterator[Chunk], fonts: pdf.FontFiles) -> None:
        """Render in workers through a bounded queue; rows follow in submission order.

        With the filesystem store the workers write the blobs themselves; with the
        database store they send the bytes back and this process stores them.
        """
        in_workers = self.settings.blob_backend is BlobBackend.FILESYSTEM
        blob_dir = self.settings.blob_dir_path if in_workers else None
        loop = asyncio.get_running_loop()
        executor = _executor(self.options.workers)
        queue: deque[tuple[pdf.RenderJob, asyncio.Future[pdf.RenderResult]]] = deque()
        try:
            async for chunk in chunks:
                job = pdf.RenderJob(chunk, fonts, self.options.seed, blob_dir)
                queue.append((job, loop.run_in_executor(executor, pdf.render_job, job)))
                if len(queue) >= self.options.workers * QUEUE_PER_WORKER:
                    await self._collect(*queue.popleft())
            while queue:
                await self._collect(*queue.popleft())
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    async def _collect(self, job: pdf.RenderJob, future: asyncio.Future[pdf.RenderResult]) -> None:
        result = await future
        self.rendered += len(result.rendered)
        self.render_seconds += result.seconds
        for document, rendered in zip(job.documents, result.rendered, strict=True):
            await self._add(document, rendered)
        self.progress()

    async def _add(self, document: DocumentPlan, rendered: pdf.Rendered) -> None:
        """Queue the row; its blob is stored first, so a row never points at nothing."""
        if rendered.content is not None:
            await self.blobs.put(rendered.content)
        self.rows.append(_row(document, rendered, self.subject_ids[document.subject.key]))
        self.done += 1
        if len(self.rows) >= ROW_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        async with db.session_scope(self.sessionmaker) as session:
            await store.insert_documents(session=session, rows=rows)

    async def _finish(
        self, subjects_before: int, documents_before: int, total: int
    ) -> GenerationReport:
        async with db.session_scope(self.sessionmaker) as session:
            documents_added = await store.count_documents(session=session) - documents_before
            subjects_added = await store.count_subjects(session=session) - subjects_before
            await audit.record_event(
                session=session,
                tag=EventTag.SANDBOX_DATA_GENERATED,
                actor=self.actor,
                details={
                    "seed": self.options.seed,
                    "subjects": self.options.subjects,
                    "subjects_added": subjects_added,
                    "documents": documents_added,
                    "documents_planned": total,
                    "years": [self.options.first_year, self.options.last_year],
                    "metadata_only": self.options.metadata_only,
                },
            )
        return GenerationReport(
            subjects=self.options.subjects,
            subjects_added=subjects_added,
            documents_planned=total,
            documents_added=documents_added,
            rendered=self.rendered,
            render_seconds=self.render_seconds,
            seconds=time.perf_counter() - self.started,
        )


def _row(document: DocumentPlan, rendered: pdf.Rendered, subject_id: int) -> dict[str, Any]:
    return {
        "subject_id": subject_id,
        "code": document.entry.code,
        "periode_debut": document.periode_debut,
        "periode_fin": document.periode_fin,
        "date_emission": document.date_emission,
        "sha256": rendered.sha256,
        "taille": rendered.taille,
        "idensua": document.idensua,
        "docdistrib": document.docdistrib,
        "doccfs": document.doccfs,
    }


def _executor(workers: int) -> concurrent.futures.Executor:
    """Worker processes; one worker renders in a thread of this process (no start-up cost).

    The forkserver start method (spawn where it is missing) never forks this process with
    its event loop and database threads.
    """
    if workers <= 1:
        return concurrent.futures.ThreadPoolExecutor(max_workers=1)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        spawn = multiprocessing.get_context("spawn")
        return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=spawn)
    forkserver = multiprocessing.get_context("forkserver")
    # The server imports the renderer (fpdf2, fontTools) once; workers fork from it.
    forkserver.set_forkserver_preload(["__main__", "ensu.sandbox.pdf"])
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=forkserver)


def _chunks(documents: Iterable[DocumentPlan], size: int) -> Iterator[Chunk]:
    chunk: list[DocumentPlan] = []
    for document in documents:
        chunk.append(document)
        if len(chunk) == size:
            yield tuple(chunk)
            chunk = []
    if chunk:
        yield tuple(chunk)
