"""The secure silo (R-CON-2): encrypted with the identity bound, checked on every read,
traced in a chained log, purged past retention; a wrong key fails clearly."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ensu_client import (
    KdfParams,
    Silo,
    SiloDocumentNotFound,
    SiloError,
    SiloIntegrityError,
    SiloKeyError,
    new_key_file,
)

#: Argon2id made cheap for tests only (the default is RFC 9106's 64 MiB, 3 passes).
FAST = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
PASSPHRASE = "correct horse battery staple"
ONE = "IDENSUA:" + "1" * 64
TWO = "IDENSUA:" + "2" * 64
PDF = b"%PDF-1.4\n" + b"confidentiel " * 500 + b"\n%%EOF\n"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def silo(tmp_path: Path) -> Silo:
    return Silo.create(tmp_path / "silo", passphrase=PASSPHRASE, kdf=FAST)


def store(silo: Silo, identity: str = ONE, *, days: int = 30, content: bytes = PDF) -> None:
    silo.store(
        identity,
        content=content,
        metadata={"codeDocument": "TVA-CA3", "siren": "732829320"},
        retain_until=NOW + dt.timedelta(days=days),
        reference="dossier-7",
        now=NOW,
    )


def object_file(silo: Silo, identity: str = ONE) -> Path:
    return silo.directory / "objects" / f"{silo.object_name(identity)}.silo"


def test_a_document_comes_back_as_stored(silo: Silo, tmp_path: Path) -> None:
    store(silo)
    again = Silo.open(tmp_path / "silo", passphrase=PASSPHRASE)
    read = again.read(ONE)
    assert read.content == PDF
    assert read.metadata == {"codeDocument": "TVA-CA3", "siren": "732829320"}
    assert (read.reference, read.retain_until) == ("dossier-7", NOW + dt.timedelta(days=30))


def test_nothing_is_stored_in_clear(silo: Silo) -> None:
    store(silo)
    files = list(silo.directory.rglob("*"))
    for path in (path for path in files if path.is_file()):
        data = path.read_bytes()
        assert b"confidentiel" not in data
        assert b"1" * 64 not in data  # neither the identity in a name nor in a file
        assert b"732829320" not in data
    assert all("1" * 64 not in path.name for path in files)


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95, -1])
def test_a_flipped_byte_is_detected_on_read(silo: Silo, where: float) -> None:
    store(silo)
    path = object_file(silo)
    data = bytearray(path.read_bytes())
    position = int(len(data) * where) if where >= 0 else len(data) - 1
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SiloIntegrityError):
        silo.read(ONE)
    assert silo.trace()[-1].action == "read-refused"


def test_the_clear_header_is_bound_too(silo: Silo) -> None:
    """The end of retention is readable without the key, but not changeable."""
    store(silo)
    path = object_file(silo)
    data = path.read_bytes()
    later = (NOW + dt.timedelta(days=30)).strftime("%Y-%m-%d").encode()
    path.write_bytes(data.replace(later, b"2099-01-01", 1))
    with pytest.raises(SiloIntegrityError):
        silo.read(ONE)


def test_a_file_moved_under_another_identity_is_refused(silo: Silo) -> None:
    store(silo, ONE)
    store(silo, TWO, content=b"%PDF autre")
    object_file(silo, ONE).replace(object_file(silo, TWO))
    with pytest.raises(SiloIntegrityError):
        silo.read(TWO)
    with pytest.raises(SiloIntegrityError):
        silo.entries()


def test_a_wrong_passphrase_fails_clearly(silo: Silo, tmp_path: Path) -> None:
    store(silo)
    with pytest.raises(SiloKeyError, match="wrong passphrase") as raised:
        Silo.open(tmp_path / "silo", passphrase="wrong horse")
    assert "nothing was read" in raised.value.hint


def test_a_key_file_silo(tmp_path: Path) -> None:
    key = new_key_file(tmp_path / "silo.key")
    assert key.stat().st_mode & 0o777 == 0o600
    silo = Silo.create(tmp_path / "silo", key_file=key)
    store(silo)
    assert Silo.open(tmp_path / "silo", key_file=key).read(ONE).content == PDF
    other = new_key_file(tmp_path / "other.key")
    with pytest.raises(SiloKeyError):
        Silo.open(tmp_path / "silo", key_file=other)
    with pytest.raises(SiloKeyError, match="key file, not a passphrase"):
        Silo.open(tmp_path / "silo", passphrase=PASSPHRASE)
    with pytest.raises(FileExistsError):
        new_key_file(key)


def test_every_access_is_traced_without_the_identity(silo: Silo, tmp_path: Path) -> None:
    store(silo)
    silo.read(ONE)
    silo.entries()
    with pytest.raises(SiloDocumentNotFound):
        silo.read(TWO)
    actions = [entry.action for entry in silo.trace()]
    assert actions == ["create", "store", "read", "list", "read-absent"]
    assert silo.trace()[1].object == silo.object_name(ONE)
    assert "1" * 64 not in (tmp_path / "silo" / "trace.log").read_text()


@pytest.mark.parametrize("edit", ["change", "remove", "swap"])
def test_an_altered_trace_is_detected(silo: Silo, tmp_path: Path, edit: str) -> None:
    store(silo)
    silo.read(ONE)
    log = tmp_path / "silo" / "trace.log"
    lines = log.read_text().splitlines()
    if edit == "change":
        entry = json.loads(lines[2])
        entry["action"] = "list"
        lines[2] = json.dumps(entry, sort_keys=True)
    elif edit == "remove":
        del lines[1]
    else:
        lines[1], lines[2] = lines[2], lines[1]
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(SiloIntegrityError, match=r"trace\.log"):
        silo.trace()
    with pytest.raises(SiloIntegrityError):
        Silo.open(tmp_path / "silo", passphrase=PASSPHRASE)


@pytest.mark.parametrize("erase", ["delete", "empty"])
def test_an_erased_trace_is_detected(silo: Silo, tmp_path: Path, erase: str) -> None:
    store(silo)
    log = tmp_path / "silo" / "trace.log"
    if erase == "delete":
        log.unlink()
    else:
        log.write_bytes(b"")
    with pytest.raises(SiloIntegrityError, match="erased"):
        Silo.open(tmp_path / "silo", passphrase=PASSPHRASE)


def test_purge_deletes_only_what_is_past_retention(silo: Silo) -> None:
    store(silo, ONE, days=10)
    store(silo, TWO, days=40)
    assert silo.purge(now=NOW + dt.timedelta(days=9)) == []
    purged = silo.purge(now=NOW + dt.timedelta(days=11))
    assert [entry.identity for entry in purged] == [ONE]
    with pytest.raises(SiloDocumentNotFound):
        silo.read(ONE)
    assert silo.read(TWO).content == PDF
    assert [entry.identity for entry in silo.entries()] == [TWO]
    assert [entry.action for entry in silo.trace()].count("purge") == 1


def test_a_damaged_file_does_not_stop_the_purge_of_the_others(silo: Silo) -> None:
    store(silo, ONE, days=10)
    store(silo, TWO, days=10)
    damaged = object_file(silo, TWO)
    data = bytearray(damaged.read_bytes())
    header_length = int.from_bytes(data[9:11])  # after the 9-byte magic
    data[11 + header_length + 4 + 20] ^= 0x01  # inside the sealed identity
    damaged.write_bytes(bytes(data))
    with pytest.raises(SiloIntegrityError, match="1 file"):
        silo.purge(now=NOW + dt.timedelta(days=11))
    assert not object_file(silo, ONE).exists()
    assert damaged.exists()


def test_retention_must_be_in_the_future(silo: Silo) -> None:
    with pytest.raises(ValueError, match="future"):
        store(silo, days=-1)


def test_verify_checks_every_document(silo: Silo) -> None:
    store(silo, ONE)
    store(silo, TWO)
    assert silo.verify() == 2
    path = object_file(silo, TWO)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(SiloIntegrityError):
        silo.verify()


def test_a_silo_is_created_once(silo: Silo) -> None:
    with pytest.raises(SiloError, match="already"):
        Silo.create(silo.directory, passphrase=PASSPHRASE, kdf=FAST)
    with pytest.raises(SiloError, match="no silo"):
        Silo.open(silo.directory / "nowhere", passphrase=PASSPHRASE)
