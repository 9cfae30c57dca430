"""Backups and the tested restore (R-SQ-3, CGU §11: at most 24 hours of data lost).

A backup is one directory under ``ENSU_BACKUP_DIR`` (default: ``backups/`` beside the
var directory, never inside it: a destroyed ``var/`` must not take its backups along),
named by its id ``ensu-backup-YYYYMMDDTHHMMSSZ``::

    manifest.json      what is inside: every file with its size and SHA-256, the kind of
                       database, the migration revision, the journal's signed checkpoint
    manifest.sha256    the SHA-256 of manifest.json (a flipped byte there shows too)
    database/          SQLite: ensu.db, journal.db, quota.db, each copied with SQLite's
                       online backup API (a consistent copy while the server writes);
                       PostgreSQL: ensu.dump, ``pg_dump --format=custom`` (one
                       repeatable-read snapshot of the whole database, journal included)
    var/               the rest of the var directory the server needs to serve again:
                       the journal's signing key (``journal/``), the PKI (``pki/``) …
    blobs/             the content-addressed PDFs (filesystem blob backend)

The order makes the copy consistent without stopping the server: a checkpoint is signed
first and kept as the backup's ``journal/checkpoint.note``; the databases are copied
next (their journal holds that checkpoint, and perhaps more leaves after it); the blobs
last (a document row is committed after its blob is written, so every blob the copied
database names is already on disk).

:func:`restore` refuses a backup that does not verify (a file missing, added, or one
byte changed; a checkpoint whose signature fails) and a target that is not empty (a
var directory with files, a PostgreSQL database with tables or other sessions, a server
answering on the API's port). After copying, it verifies the restored journal as
``ensu journal verify`` does, against the backup's checkpoint.

Keep ``ENSU_SECRET_KEY`` apart from the backups: it decrypts the token signing keys
stored in the database, and a backup is useless without it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ensu import db
from ensu.audit import keys
from ensu.audit import service as audit
from ensu.audit.note import NoteError, NoteVerifier
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.audit.verify import verify
from ensu.audit.witness import CheckpointWitness
from ensu.audit.writer import checkpoint_now
from ensu.config import BlobBackend, Settings

FORMAT = "ensu-backup/1"
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
PREFIX = "ensu-backup-"
#: SQLite files of the var directory copied through the backup API, not as files.
SQLITE_FILES = ("journal.db", "quota.db")
#: What is never copied as a file: a live database's companions.
_LIVE_SUFFIXES = ("-wal", "-shm", "-journal")
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup could not be made or restored; the message says why, for the operator."""


class BackupCorrupt(BackupError):
    """The backup does not verify: a file missing, added or altered, a bad checkpoint."""


class RestoreRefused(BackupError):
    """The target is not empty, or a server still runs on it."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    id: str
    path: Path
    created_at: dt.datetime
    database: str
    files: int
    bytes: int
    journal_size: int


def backup_dir(settings: Settings) -> Path:
    return settings.backup_dir_path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, sorted (symbolic links are not followed)."""
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _live(path: Path) -> bool:
    return path.name.endswith(_LIVE_SUFFIXES) or path.name.startswith(".")


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL (``sqlite+aiosqlite:///var/ensu.db``)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"no SQLite file in {url}")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API), as one
    self-contained file (rollback journal mode, no ``-wal`` beside it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    origin = sqlite3.connect(source)
    try:
        copy = sqlite3.connect(target)
        try:
            origin.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        origin.close()


def _pg_env(url: str) -> tuple[str, dict[str, str]]:
    """libpq's connection string without the password, which goes in ``PGPASSWORD``
    (not on the command line, where ``ps`` shows it)."""
    parsed = make_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(password=None).render_as_string(hide_password=False), env


def _run_tool(command: list[str], env: dict[str, str]) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed tool names, arguments of ours
            command, env=env, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} is not installed (Debian: apt-get install postgresql-client)"
        ) from None
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")


# -- create --------------------------------------------------------------------------


async def create(*, settings: Settings, actor: str, now: dt.datetime) -> BackupInfo:
    """Make a backup of the deployment of ``settings`` while it serves; journaled."""
    root = backup_dir(settings)
    if root.resolve().is_relative_to(settings.var_dir.resolve()):
        raise BackupError(
            f"ENSU_BACKUP_DIR ({root}) is inside the var directory: a destroyed var"
            " directory would take its backups along"
        )
    root.mkdir(parents=True, exist_ok=True)
    backup_id = f"{PREFIX}{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    final = root / backup_id
    if final.exists():
        raise BackupError(f"{final} exists already (one backup a second at most)")
    partial = Path(tempfile.mkdtemp(prefix=f".{backup_id}.", dir=root))
    try:
        note, revision = await _checkpoint(settings), await _revision(settings)
        await asyncio.to_thread(_copy_databases, settings, partial)
        await asyncio.to_thread(_copy_files, settings, partial, note)
        await asyncio.to_thread(
            _seal,
            settings,
            partial,
            final,
            {"backup_id": backup_id, "now": now, "note": note, "revision": revision},
        )
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    info = describe(final)
    await _record(settings, EventTag.OPERATIONS_BACKUP_CREATED, actor, info)
    return info


async def _checkpoint(settings: Settings) -> str:
    """Sign a checkpoint of the journal as it is now; its signed note."""
    journal = JournalStore.for_settings(settings)
    try:
        await journal.ensure_schema()
        signer = keys.load_or_create_signer(settings)
        kept = CheckpointWitness.for_settings(settings, journal, signer.verifier)
        made = await checkpoint_now(journal, signer, witness=kept)
        return made.note
    finally:
        await journal.dispose()


async def _revision(settings: Settings) -> str | None:
    engine = db.make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            return None if found is None else str(found)
    finally:
        await engine.dispose()


def _copy_databases(settings: Settings, target: Path) -> None:
    folder = target / "database"
    folder.mkdir()
    if settings.is_sqlite:
        _sqlite_copy(sqlite_path(settings.database_url), folder / "ensu.db")
        for name in SQLITE_FILES:
            if (settings.var_dir / name).exists():
                _sqlite_copy(settings.var_dir / name, folder / name)
        return
    conninfo, env = _pg_env(settings.database_url)
    _run_tool(
        [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={folder / 'ensu.dump'}",
            f"--dbname={conninfo}",
        ],
        env,
    )


def _var_files(settings: Settings) -> Iterator[Path]:
    """The var directory's files to copy as files: not the live databases, not the
    blobs (copied apart), not the kept checkpoint (the backup's own is written)."""
    skipped = {settings.var_dir / name for name in ("ensu.db", *SQLITE_FILES)}
    if settings.is_sqlite:
        skipped.add(sqlite_path(settings.database_url))
    kept = keys.journal_dir(settings) / "checkpoint.note"
    blobs = settings.blob_dir_path.resolve()
    for path in _walk(settings.var_dir):
        if path in skipped or path == kept or _live(path):
            continue
        if path.resolve().is_relative_to(blobs):
            continue
        yield path


def _copy_each(paths: Iterable[Path], source: Path, target: Path) -> None:
    """Copy each of ``paths`` (files under ``source``) to its place under ``target``."""
    for path in paths:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def _copy_files(settings: Settings, target: Path, note: str) -> None:
    var = target / "var"
    _copy_each(_var_files(settings), settings.var_dir, var)
    journal = var / keys.journal_dir(settings).relative_to(settings.var_dir)
    journal.mkdir(parents=True, exist_ok=True)
    (journal / "checkpoint.note").write_text(note, encoding="utf-8")
    if settings.blob_backend is BlobBackend.FILESYSTEM:
        blobs = settings.blob_dir_path
        kept = (path for path in _walk(blobs) if not _live(path))
        _copy_each(kept, blobs, target / "blobs")


def _seal(settings: Settings, folder: Path, final: Path, facts: dict[str, Any]) -> None:
    """Write the manifest of ``folder``, then move it to ``final`` (one rename: a backup
    is listed complete or not at all)."""
    _write_manifest(folder, _manifest(settings, folder, **facts))
    folder.rename(final)


def _manifest(
    settings: Settings,
    folder: Path,
    *,
    backup_id: str,
    now: dt.datetime,
    note: str,
    revision: str | None,
) -> dict[str, Any]:
    verifier = keys.load_verifier(settings)
    checkpoint = verifier.open(note)
    files = {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in _walk(folder)
    }
    return {
        "format": FORMAT,
        "id": backup_id,
        "created_at": now.astimezone(dt.UTC).isoformat(),
        "environment": settings.environment.value,
        "database": "sqlite" if settings.is_sqlite else "postgresql",
        "blob_backend": settings.blob_backend.value,
        "revision": revision,
        "checkpoint": {
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
            "key": verifier.vkey,
            "note": note,
        },
        "files": files,
    }


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (folder / MANIFEST).write_bytes(data)
    (folder / MANIFEST_DIGEST).write_text(f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n")


# -- reading ---------------------------------------------------------------------------


def _load_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = (folder / MANIFEST).read_bytes()
        recorded = (folder / MANIFEST_DIGEST).read_text().split()[0]
    except (OSError, IndexError):
        raise BackupCorrupt(f"{folder}: no {MANIFEST} with its {MANIFEST_DIGEST}") from None
    if hashlib.sha256(data).hexdigest() != recorded:
        raise BackupCorrupt(f"{folder}: {MANIFEST} does not match {MANIFEST_DIGEST}")
    manifest: dict[str, Any] = json.loads(data)
    if manifest.get("format") != FORMAT:
        raise BackupCorrupt(f"{folder}: not a backup of format {FORMAT}")
    return manifest


def describe(folder: Path) -> BackupInfo:
    """What a backup holds, from its manifest (not verified: see :func:`verify_backup`)."""
    manifest = _load_manifest(folder)
    files: dict[str, dict[str, Any]] = manifest["files"]
    return BackupInfo(
        id=manifest["id"],
        path=folder,
        created_at=dt.datetime.fromisoformat(manifest["created_at"]),
        database=manifest["database"],
        files=len(files),
        bytes=sum(int(entry["size"]) for entry in files.values()),
        journal_size=int(manifest["checkpoint"]["size"]),
    )


def list_backups(*, settings: Settings) -> list[BackupInfo]:
    """The complete backups under ``ENSU_BACKUP_DIR``, oldest first (a backup being
    written is a hidden ``.partial`` directory, never listed)."""
    root = backup_dir(settings)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.glob(f"{PREFIX}*")):
        try:
            found.append(describe(folder))
        except (BackupCorrupt, KeyError, ValueError):
            continue
    return found


def resolve(*, settings: Settings, path_or_id: str) -> Path:
    """A backup's directory from its path, or from its id under ``ENSU_BACKUP_DIR``."""
    candidate = Path(path_or_id)
    if candidate.is_dir():
        return candidate
    named = backup_dir(settings) / path_or_id
    if named.is_dir():
        return named
    raise BackupError(f"no backup {path_or_id} (neither a directory nor an id in {named.parent})")


def verify_backup(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder`` once every file matches it and its checkpoint's
    signature verifies; :class:`BackupCorrupt` naming the first problem otherwise."""
    manifest = _load_manifest(folder)
    files: dict[str, dict[str, Any]] = manifest["files"]
    present = {
        path.relative_to(folder).as_posix()
        for path in _walk(folder)
        if path.name not in (MANIFEST, MANIFEST_DIGEST)
    }
    missing = sorted(set(files) - present)
    if missing:
        raise BackupCorrupt(f"missing from the backup: {', '.join(missing[:5])}")
    extra = sorted(present - set(files))
    if extra:
        raise BackupCorrupt(f"not in the manifest: {', '.join(extra[:5])}")
    for name, entry in files.items():
        path = folder / name
        if path.stat().st_size != entry["size"] or _sha256(path) != entry["sha256"]:
            raise BackupCorrupt(f"{name} does not match its checksum in the manifest")
    _check_checkpoint(folder, manifest)
    return manifest


def _check_checkpoint(folder: Path, manifest: dict[str, Any]) -> None:
    recorded = manifest["checkpoint"]
    vkey = folder / "var" / "journal" / keys.VKEY_FILE
    try:
        verifier = NoteVerifier.from_vkey(vkey.read_text())
        checkpoint = verifier.open(recorded["note"])
    except (OSError, NoteError) as exc:
        raise BackupCorrupt(f"the journal checkpoint does not verify: {exc}") from None
    if verifier.vkey != recorded["key"]:
        raise BackupCorrupt("the journal key is not the one the manifest names")
    kept = (folder / "var" / "journal" / "checkpoint.note").read_text(encoding="utf-8")
    if kept != recorded["note"] or checkpoint.size != recorded["size"]:
        raise BackupCorrupt("the kept checkpoint is not the manifest's")


def prune(*, settings: Settings, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest backups; the ids deleted."""
    backups = list_backups(settings=settings)
    doomed = backups[: max(0, len(backups) - keep)]
    for info in doomed:
        shutil.rmtree(info.path)
    return [info.id for info in doomed]


# -- restore ---------------------------------------------------------------------------


async def restore(*, settings: Settings, path_or_id: str, actor: str) -> BackupInfo:
    """Restore a verified backup into the empty deployment of ``settings`` (server
    stopped), then verify the restored journal; journaled in the restored database."""
    folder = resolve(settings=settings, path_or_id=path_or_id)
    manifest = await asyncio.to_thread(verify_backup, folder)
    kind = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest["database"] != kind:
        raise RestoreRefused(
            f"the backup is of a {manifest['database']} deployment; ENSU_DATABASE_URL names {kind}"
        )
    _refuse_if_serving(settings)
    await asyncio.to_thread(_refuse_non_empty_files, settings)
    if not settings.is_sqlite:
        await _refuse_non_empty_database(settings)
    try:
        await asyncio.to_thread(_put_files, settings, folder)
        if not settings.is_sqlite:
            await asyncio.to_thread(_pg_restore, settings, folder / "database" / "ensu.dump")
        await _verify_restored(settings, manifest)
    except BackupError:
        if settings.is_sqlite:
            await asyncio.to_thread(_undo_files, settings)
        raise
    info = describe(folder)
    await _record(settings, EventTag.OPERATIONS_BACKUP_RESTORED, actor, info)
    return info


def _refuse_if_serving(settings: Settings) -> None:
    """A server answering on the API's or the operators' port is running: refused."""
    for name, port in (
        ("ENSU_LISTEN_PORT", settings.listen_port),
        ("ENSU_METRICS_PORT", settings.metrics_port),
    ):
        if not port:
            continue
        try:
            with socket.create_connection((settings.listen_host, port), timeout=0.5):
                pass
        except OSError:
            continue
        raise RestoreRefused(
            f"something answers on {settings.listen_host}:{port} ({name}): stop the server"
            " before restoring"
        )


def _targets(settings: Settings) -> list[Path]:
    targets = [settings.var_dir, settings.blob_dir_path]
    if settings.is_sqlite:
        targets.append(sqlite_path(settings.database_url))
    return targets


def _refuse_non_empty_files(settings: Settings) -> None:
    for target in _targets(settings):
        if target.is_file():
            raise RestoreRefused(f"{target} exists: restore into an empty var directory")
        if target.is_dir() and any(target.iterdir()):
            listed = ", ".join(sorted(child.name for child in target.iterdir())[:5])
            raise RestoreRefused(
                f"{target} is not empty ({listed}): restore into an empty or destroyed var"
                " directory, with the server stopped"
            )


async def _refuse_non_empty_database(settings: Settings) -> None:
    engine = db.make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.scalar(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
            others = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    except Exception as exc:  # the database must exist (created empty by the operator)
        raise RestoreRefused(f"the database cannot be reached: {exc}") from None
    finally:
        await engine.dispose()
    if tables:
        raise RestoreRefused(
            f"the database holds {tables} table(s): restore into an empty database"
        )
    if others:
        raise RestoreRefused(
            f"{others} other session(s) are connected to the database: stop the servers"
            " before restoring"
        )


def _put_files(settings: Settings, folder: Path) -> None:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    _copy_each(_walk(folder / "var"), folder / "var", settings.var_dir)
    if settings.is_sqlite:
        source = folder / "database"
        main = sqlite_path(settings.database_url)
        main.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "ensu.db", main)
        for name in SQLITE_FILES:
            if (source / name).exists():
                shutil.copy2(source / name, settings.var_dir / name)
    blobs = settings.blob_dir_path
    blobs.mkdir(parents=True, exist_ok=True)
    _copy_each(_walk(folder / "blobs"), folder / "blobs", blobs)


def _undo_files(settings: Settings) -> None:
    """Empty what a failed restore wrote (the targets were empty before it)."""
    for target in _targets(settings):
        if target.is_file():
            target.unlink()
        elif target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _pg_restore(settings: Settings, dump: Path) -> None:
    conninfo, env = _pg_env(settings.database_url)
    _run_tool(
        [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={conninfo}",
            str(dump),
        ],
        env,
    )


async def _verify_restored(settings: Settings, manifest: dict[str, Any]) -> None:
    """The restored journal verifies whole, and holds the backup's checkpoint."""
    journal = JournalStore.for_settings(settings)
    try:
        verifier = keys.load_verifier(settings)
        result = await verify(
            journal,
            verifier,
            kept=manifest["checkpoint"]["note"],
            exchange_days=settings.journal_retention_days,
        )
    finally:
        await journal.dispose()
    if not result.ok:
        raise BackupCorrupt(f"the restored journal does not verify: {result.problem}")


async def _record(settings: Settings, tag: EventTag, actor: str, info: BackupInfo) -> None:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.session_scope(db.make_sessionmaker(engine)) as session:
            await audit.record_event(
                session=session,
                tag=tag,
                actor=actor,
                details={
                    "backup": info.id,
                    "database": info.database,
                    "files": info.files,
                    "bytes": info.bytes,
                    "journal_size": info.journal_size,
                },
            )
    finally:
        await engine.dispose()
