"""Backups that refuse to restore what does not verify, and targets that are not empty
(R-SQ-3). The whole drill (serve, back up, destroy, restore, serve) is
``tests/functional/test_restore_drill.py``."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import pytest

from ensu.config import Settings, get_settings
from ensu.operations import backup
from tests.support.cli import Invoke

BLOB = "ab/cd/abcdef0123"


@pytest.fixture
def run(run: Invoke, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``ensu`` on a migrated SQLite deployment with a blob and a PKI-like file, the
    server's ports free ones (nothing listens there)."""
    monkeypatch.setenv("ENSU_LISTEN_PORT", str(_free_port()))
    monkeypatch.setenv("ENSU_METRICS_PORT", "0")
    get_settings.cache_clear()
    var = sqlite_settings.var_dir
    (var / "blobs" / BLOB).parent.mkdir(parents=True)
    (var / "blobs" / BLOB).write_bytes(b"%PDF-1.7 a document")
    (var / "pki").mkdir()
    (var / "pki" / "ca.pem").write_text("not a real CA, a file to carry")
    return run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def made(run: Invoke, sqlite_settings: Settings) -> Path:
    """A backup of the deployment, its var directory then destroyed."""
    result = run("backup", "create")
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    shutil.rmtree(sqlite_settings.var_dir)
    return path


def test_a_backup_carries_a_manifest_of_checksums_and_the_signed_checkpoint(
    made: Path,
) -> None:
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["database"] == "sqlite"
    assert {"database/ensu.db", "database/journal.db", f"blobs/{BLOB}", "var/pki/ca.pem"} <= set(
        manifest["files"]
    )
    assert "var/journal/signing.key" in manifest["files"]
    assert manifest["checkpoint"]["note"].startswith(manifest["checkpoint"]["key"].split("+")[0])
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())


def test_restore_puts_everything_back(run: Invoke, made: Path, sqlite_settings: Settings) -> None:
    result = run("backup", "restore", str(made))
    assert result.exit_code == 0, result.output
    var = sqlite_settings.var_dir
    assert (var / "blobs" / BLOB).read_bytes() == b"%PDF-1.7 a document"
    assert (var / "pki" / "ca.pem").exists()
    assert (var / "journal" / "checkpoint.note").exists()
    assert run("journal", "verify").exit_code == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "does not match its checksum"),
        ("remove", "missing from the backup"),
        ("add", "not in the manifest"),
        ("manifest", "does not match manifest.sha256"),
        ("checkpoint", "the journal checkpoint does not verify"),
    ],
)
def test_a_backup_that_does_not_verify_is_refused(
    run: Invoke, made: Path, sqlite_settings: Settings, damage: str, message: str
) -> None:
    if damage == "flip":
        path = made / "blobs" / BLOB
        data = bytearray(path.read_bytes())
        data[3] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "remove":
        (made / "database" / "journal.db").unlink()
    elif damage == "add":
        (made / "var" / "pki" / "intruder.pem").write_text("x")
    elif damage == "manifest":
        path = made / "manifest.json"
        path.write_text(path.read_text().replace('"sqlite"', '"sqlitf"'))
    else:  # a manifest rewritten whole, its digest too: the signature still fails
        manifest = json.loads((made / "manifest.json").read_text())
        note = manifest["checkpoint"]["note"].split("\n")
        note[1] = str(int(note[1]) + 1)
        manifest["checkpoint"]["note"] = "\n".join(note)
        rewritten = json.dumps(manifest).encode()
        (made / "manifest.json").write_bytes(rewritten)
        digest = hashlib.sha256(rewritten).hexdigest()
        (made / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    check = run("backup", "check", str(made))
    assert check.exit_code == 1
    assert message in check.output
    result = run("backup", "restore", str(made))
    assert result.exit_code == 1
    assert message in result.output
    assert not sqlite_settings.var_dir.exists()  # nothing was written


def test_restore_refuses_a_var_directory_that_is_not_empty(
    run: Invoke, made: Path, sqlite_settings: Settings
) -> None:
    sqlite_settings.var_dir.mkdir()
    (sqlite_settings.var_dir / "ensu.db").write_bytes(b"")
    result = run("backup", "restore", made.name)
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "ensu.db" in result.output


def test_restore_refuses_while_a_server_answers(
    run: Invoke, made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("ENSU_LISTEN_PORT", str(listener.getsockname()[1]))
        get_settings.cache_clear()
        result = run("backup", "restore", made.name)
    assert result.exit_code == 1
    assert "stop the server" in result.output


def test_check_fails_when_the_newest_backup_is_too_old(run: Invoke, made: Path) -> None:
    assert run("backup", "check").exit_code == 0
    result = run("backup", "check", "--max-age-hours", "0")
    assert result.exit_code == 1
    assert "hours old" in result.output


def test_prune_keeps_the_newest(made: Path) -> None:
    older = made.with_name("ensu-backup-20200101T000000Z")
    shutil.copytree(made, older)
    settings = get_settings()
    assert [info.path for info in backup.list_backups(settings=settings)] == [older, made]
    assert backup.prune(settings=settings, keep=1) == [
        json.loads((made / "manifest.json").read_text())["id"]
    ]
    assert not older.exists()
    assert made.exists()


def test_backups_are_never_written_inside_the_var_directory(
    run: Invoke, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENSU_BACKUP_DIR", str(sqlite_settings.var_dir / "backups"))
    get_settings.cache_clear()
    result = run("backup", "create")
    assert result.exit_code == 1
    assert "inside the var directory" in result.output
