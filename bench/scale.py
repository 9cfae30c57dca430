"""Data scale: ``python -m bench.scale`` (``make bench-scale``).

Builds stores of metadata-only documents (every row points at one placeholder PDF, as
``ensu sandbox generate`` would without rendering), ``--per-subject`` documents for each
of ``--subjects`` subjects, for each size asked (default: 10,000 and 1,000,000 subjects),
then measures in the same process, through the whole app (gateway, checks, journal):

- the latency of ``GET /documents/IDENSUA/{id}`` and ``GET /documents?siren=`` on random
  documents and subjects of the store, one call at a time (p50, p99);
- the database's bytes per document (pages in use, indexes included).

The largest store's latencies are printed as ratios to the smallest's (target: within
1.25x), and everything is written as JSON under ``bench/results/``. The rows are written
with plain ``sqlite3`` in large transactions (the product's import goes through the
service layer, one document at a time: the point here is the store's size, not the
import's speed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.arms import TOKEN_BODY, api_headers, metadata_path, proxy_headers
from bench.settings import settings_for
from bench.world import CODE, World, pdf, prepare
from ensu.app import create_app
from ensu.documents.storage import FilesystemBlobStore

RESULTS = Path(__file__).with_name("results")
API = "/ensudocuments/v1"
#: SIRENs of the bulk subjects start far from the fixture's (bench.world.sirens).
FIRST_STEM = 10_000_000
CHUNK = 50_000  # subjects per transaction

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@dataclass
class StoreResult:
    subjects: int
    documents: int
    build_seconds: float
    bytes_per_document: float
    metadata_p50_ms: float
    metadata_p99_ms: float
    list_p50_ms: float
    list_p99_ms: float


def luhn_siren(stem: int) -> str:
    """The Luhn-valid SIREN of an eight-digit ``stem`` (its check digit appended)."""
    digits = f"{stem:08d}"
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


def _rows(
    first: int, count: int, per_subject: int, sha: bytes, size: int
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    for offset in range(count):
        subject_id = first + offset
        siren = luhn_siren(FIRST_STEM + subject_id)
        subject = (subject_id, siren, None, f"Entreprise {siren}")
        docs = []
        for month in range(1, per_subject + 1):
            start = dt.date(2023 + (month - 1) // 12, (month - 1) % 12 + 1, 1)
            end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            docs.append(
                (
                    secrets.token_urlsafe(48),
                    subject_id,
                    CODE,
                    start.isoformat(),
                    end.isoformat(),
                    (end + dt.timedelta(days=10)).isoformat(),
                    size,
                    sha,
                )
            )
        yield subject, docs


def build(var_dir: Path, subjects: int, per_subject: int, console: Console) -> tuple[World, float]:
    """The fixture of :mod:`bench.world`, then ``subjects`` more subjects in bulk."""
    began = time.monotonic()
    world = prepare(var_dir)
    placeholder = pdf("Document de démonstration : contenu non généré")
    store = FilesystemBlobStore(var_dir / "blobs")
    sha = hashlib.sha256(placeholder).digest()
    store.put_sync(sha, placeholder)
    connection = sqlite3.connect(var_dir / "ensu.db", isolation_level=None)
    connection.execute("PRAGMA cache_size=-262144")  # 256 MiB while building
    (first,) = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM subjects").fetchone()
    columns = TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"{subjects:,} subjects", total=subjects)
        for start in range(0, subjects, CHUNK):
            count = min(CHUNK, subjects - start)
            connection.execute("BEGIN")
            batch = list(_rows(first + start, count, per_subject, sha, len(placeholder)))
            connection.executemany(
                "INSERT INTO subjects (id, siren, idsp, denomination) VALUES (?, ?, ?, ?)",
                [subject for subject, _ in batch],
            )
            connection.executemany(
                "INSERT INTO documents (idensua, subject_id, code, periode_debut, periode_fin,"
                " date_emission, taille, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [doc for _, docs in batch for doc in docs],
            )
            connection.execute("COMMIT")
            progress.advance(task, count)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("ANALYZE")
    connection.close()
    return world, time.monotonic() - began


def bytes_per_document(database: Path) -> tuple[float, int]:
    with sqlite3.connect(database) as connection:
        ((pages,),) = connection.execute("PRAGMA page_count").fetchall()
        ((free,),) = connection.execute("PRAGMA freelist_count").fetchall()
        ((size,),) = connection.execute("PRAGMA page_size").fetchall()
        ((documents,),) = connection.execute("SELECT count(*) FROM documents").fetchall()
    return (pages - free) * size / documents, documents


def _percentiles(values: list[float]) -> tuple[float, float]:
    values.sort()
    return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]


async def measure(world: World, calls: int) -> tuple[float, float, float, float]:
    """p50/p99 (ms) of metadata and list calls on random documents and subjects."""
    settings = settings_for(world.var_dir, quota="sqlite", redis_url=None)
    settings = settings.model_copy(update={"accel_redirect": False})
    api = create_app(settings)
    with sqlite3.connect(world.var_dir / "ensu.db") as connection:
        ((count,),) = connection.execute("SELECT count(*) FROM documents").fetchall()
        rng = random.Random(7)
        picks = [rng.randrange(1, count + 1) for _ in range(calls)]
        identifiers = [
            connection.execute("SELECT idensua FROM documents WHERE id = ?", (pick,)).fetchone()[0]
            for pick in picks
        ]
        subject_count = connection.execute("SELECT max(id) FROM subjects").fetchone()[0]
        sirens = [
            connection.execute(
                "SELECT siren FROM subjects WHERE id = ?", (rng.randrange(1, subject_count + 1),)
            ).fetchone()[0]
            for _ in range(calls)
        ]
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            form = proxy_headers(world) | {"Content-Type": "application/x-www-form-urlencoded"}
            token = (await client.post("/token", headers=form, content=TOKEN_BODY)).json()[
                "access_token"
            ]
            headers = api_headers(world, token)
            timings: dict[str, list[float]] = {"metadata": [], "list": []}
            for kind, paths in (
                ("metadata", [metadata_path(i) for i in identifiers]),
                ("list", [f"{API}/documents?siren={s}" for s in sirens]),
            ):
                for warm, path in enumerate(paths[:50] + paths):
                    sent = headers | {"X-Correlation-ID": str(uuid.uuid4())}
                    began = time.perf_counter()
                    response = await client.get(path, headers=sent)
                    elapsed = time.perf_counter() - began
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                    if warm >= 50:
                        timings[kind].append(elapsed * 1000)
    metadata = _percentiles(timings["metadata"])
    listing = _percentiles(timings["list"])
    return metadata[0], metadata[1], listing[0], listing[1]


@app.command()
def main(
    *,
    subjects: Annotated[
        list[int] | None, typer.Option(help="Store sizes in subjects (repeat the option).")
    ] = None,
    per_subject: Annotated[int, typer.Option(min=1, max=24, help="Documents per subject.")] = 10,
    calls: Annotated[int, typer.Option(min=100, help="Calls measured per route and store.")] = 2000,
    output_dir: Annotated[Path, typer.Option(help="Where the JSON results are written.")] = RESULTS,
) -> None:
    """Build stores of several sizes and compare their latencies and bytes per document."""
    console = Console()
    if not console.is_terminal:  # piped or logged: wide enough for the table
        console = Console(width=160)
    sizes = sorted(subjects or [10_000, 1_000_000])
    results: list[StoreResult] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="ensu-scale-") as temporary:
            var_dir = Path(temporary) / "var"
            console.print(f"building {size:,} subjects x {per_subject} documents ...")
            world, seconds = build(var_dir, size, per_subject, console)
            per_document, documents = bytes_per_document(var_dir / "ensu.db")
            console.print(f"  {documents:,} documents in {seconds:.0f} s; measuring ...")
            timings = anyio.run(measure, world, calls)
            results.append(
                StoreResult(
                    size,
                    documents,
                    round(seconds, 1),
                    round(per_document, 1),
                    *(round(t, 3) for t in timings),
                )
            )
    table = Table(title="ENSU Documents: data scale (one call at a time, in process)")
    for name in (
        "subjects",
        "documents",
        "bytes/doc",
        "metadata p50",
        "metadata p99",
        "list p50",
        "list p99",
        "x smallest (p50 meta / list)",
    ):
        table.add_column(name, justify="right")
    base = results[0]
    for result in results:
        table.add_row(
            f"{result.subjects:,}",
            f"{result.documents:,}",
            f"{result.bytes_per_document:.0f}",
            f"{result.metadata_p50_ms:.2f} ms",
            f"{result.metadata_p99_ms:.2f} ms",
            f"{result.list_p50_ms:.2f} ms",
            f"{result.list_p99_ms:.2f} ms",
            f"{result.metadata_p50_ms / base.metadata_p50_ms:.2f} / "
            f"{result.list_p50_ms / base.list_p50_ms:.2f}",
        )
    console.print(table)
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = output_dir / f"scale-{stamp}.json"
    path.write_text(
        json.dumps(
            {"per_subject": per_subject, "calls": calls, "stores": [asdict(r) for r in results]},
            indent=2,
        )
    )
    console.print(f"results: {path}")


if __name__ == "__main__":
    app()
