"""The state under var/ is private to the service's user whatever the umask: folders
0700, files 0600 — database, journal, quota counters, their -wal and -shm, blobs, keys
(R-TR-2; OWASP API Security Top 10 2023, API8; ensu.files)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensu import db, files
from ensu.app import create_app
from ensu.config import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, which left every file readable by all."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_state_is_private_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    var = tmp_path / "state" / "var"  # neither folder exists yet
    settings = Settings(var_dir=var)
    db.upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.blob_store.put(b"%PDF-1.4 fictive\n")
        await app.state.authority.quota_counter.hit(key="TS", limit=10, now=time.time())
        names = {path.name for path in var.rglob("*")}
        # While the databases are open, their -wal and -shm exist: checked too.
        assert {"ensu.db-wal", "journal.db-wal", "quota.db-wal"} <= names, sorted(names)
        loose = {
            str(path.relative_to(var)): oct(mode(path))
            for path in [var, *var.rglob("*")]
            if mode(path) != (files.PRIVATE_DIR if path.is_dir() else files.PRIVATE_FILE)
        }
    assert loose == {}
    assert mode(tmp_path / "state") == files.PRIVATE_DIR  # made for var/, made private


def test_an_existing_folder_is_left_as_the_operator_set_it(tmp_path: Path) -> None:
    shared = tmp_path / "blobs"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)  # noqa: S103 - the operator's deliberate group access
    files.private_file(shared / "ab" / "file")
    assert mode(shared) == 0o750
    assert (mode(shared / "ab"), mode(shared / "ab" / "file")) == (0o700, 0o600)


def test_a_restrictive_umask_still_gives_the_owner_its_rights(tmp_path: Path) -> None:
    previous = os.umask(0o277)
    try:
        files.private_file(tmp_path / "made" / "file")
        files.write_private(tmp_path / "made" / "other", b"x")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "made") == 0o700
    assert mode(tmp_path / "made" / "file") == mode(tmp_path / "made" / "other") == 0o600


def test_a_durable_write_is_private_and_leaves_no_temporary_file(
    tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "made" / "blob"
    files.write_durable(target, b"first")
    files.write_durable(target, b"second")
    assert target.read_bytes() == b"second"
    assert (mode(tmp_path / "made"), mode(target)) == (0o700, 0o600)

    def failing_replace(source: str, destination: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        files.write_durable(target, b"third")
    assert target.read_bytes() == b"second"
    assert sorted(path.name for path in (tmp_path / "made").iterdir()) == ["blob"]
