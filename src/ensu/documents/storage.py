"""Content-addressed blob storage for the documents' PDFs (R-DATA-4).

A blob's name is its SHA-256. Two backends share one interface: the local filesystem
(the embedded default) and the database (a ``blobs`` table, for the scaled-out mode on
PostgreSQL). Every read recomputes the hash: a blob that does not match is never
returned, :class:`BlobIntegrityError` is raised and the caller records the alert.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import files
from ensu.documents.models import Blob

#: Blobs up to this size are read in the event loop's thread (see ``get``).
INLINE_READ_BYTES = 256 * 1024
#: File versions remembered as verified (see ``FilesystemBlobStore.verified_name``).
VERIFIED_VERSIONS = 100_000


class BlobError(Exception):
    """Base of the blob store's errors."""


class BlobNotFoundError(BlobError):
    pass


class BlobIntegrityError(BlobError):
    """The stored bytes do not hash to their name: never serve them."""

    def __init__(self, expected: bytes, actual: bytes) -> None:
        super().__init__(f"blob {expected.hex()} hashes to {actual.hex()}")
        self.expected = expected
        self.actual = actual


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _verified(expected: bytes, data: bytes) -> bytes:
    actual = digest(data)
    if actual != expected:
        raise BlobIntegrityError(expected, actual)
    return data


class BlobStore(Protocol):
    async def put(self, data: bytes) -> bytes:
        """Store ``data`` (idempotent) and return its SHA-256."""
        ...

    async def get(self, sha256: bytes) -> bytes:
        """The verified bytes named ``sha256``."""
        ...

    async def exists(self, sha256: bytes) -> bool: ...


class FilesystemBlobStore:
    """Blobs as files ``root/ab/cd/abcd…``, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        #: sha256 -> (inode, size, mtime, ctime) of the file version last verified.
        self._verified: dict[bytes, tuple[int, int, int, int]] = {}

    def path_for(self, sha256: bytes) -> Path:
        name = sha256.hex()
        return self.root / name[:2] / name[2:4] / name

    async def put(self, data: bytes) -> bytes:
        name = digest(data)
        await asyncio.to_thread(self.put_sync, name, data)
        return name

    def put_sync(self, name: bytes, data: bytes) -> None:
        """Write ``data`` under ``name`` unless already there (synchronous, for pools)."""
        path = self.path_for(name)
        if path.exists():
            return
        files.write_durable(path, data)  # folder 0700, file 0600, fsynced, renamed

    async def get(self, sha256: bytes) -> bytes:
        path = self.path_for(sha256)
        try:
            with path.open("rb") as handle:
                # A typical PDF (tens of KiB, in the page cache) is read in the loop: cheaper
                # than the hop to a thread; a large one is read off the loop.
                if os.fstat(handle.fileno()).st_size <= INLINE_READ_BYTES:
                    data = handle.read()
                else:
                    data = await asyncio.to_thread(handle.read)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(sha256.hex()) from exc
        return _verified(sha256, data)

    async def exists(self, sha256: bytes) -> bool:
        return self.path_for(sha256).exists()

    async def verified_name(self, sha256: bytes) -> str:
        """The blob's path relative to the store, its content verified: for a proxy that
        serves the file itself (``X-Accel-Redirect``).

        The content is hashed when this file version was not verified before: a version
        is its inode, size, modification and status-change times, so any write to the
        file (even one that puts its mtime back: the ctime moves) makes it checked again.
        """
        hexdigest = sha256.hex()
        name = f"{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"  # as path_for, without pathlib
        try:
            stat = os.stat(f"{self._root_text}/{name}")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(hexdigest) from exc
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if self._verified.get(sha256) != version:
            await self.get(sha256)  # raises BlobIntegrityError on a mismatch
            if len(self._verified) >= VERIFIED_VERSIONS:
                self._verified.clear()
            self._verified[sha256] = version
        return name


class DatabaseBlobStore:
    """Blobs in the ``blobs`` table (``bytea`` on PostgreSQL)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def put(self, data: bytes) -> bytes:
        name = digest(data)
        async with self.sessionmaker() as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(Blob).values(sha256=name, content=data)
            await session.execute(statement.on_conflict_do_nothing(index_elements=["sha256"]))
        return name

    async def get(self, sha256: bytes) -> bytes:
        async with self.sessionmaker() as session:
            data = await session.scalar(select(Blob.content).where(Blob.sha256 == sha256))
        if data is None:
            raise BlobNotFoundError(sha256.hex())
        return _verified(sha256, data)

    async def exists(self, sha256: bytes) -> bool:
        async with self.sessionmaker() as session:
            found = await session.scalar(select(Blob.sha256).where(Blob.sha256 == sha256))
        return found is not None
