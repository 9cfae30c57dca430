"""The secure silo: where a consumer keeps what it received (R-CON-2).

Confidentiality and integrity: each document is one file holding its identity, its
metadata and its content, each encrypted with AES-256-GCM (NIST SP 800-38D) under a
fresh 96-bit nonce, the document's identity (``IDENSUA:…``) and the file's clear header
bound as associated data: a flipped byte, a header edited, or two files swapped fail
the read. (The identity is sealed apart, bound to the header only, so that a listing can
learn it without knowing it first; it must then match the file's keyed name.) The key comes
from a key file (32 random bytes) or from a passphrase through Argon2id (RFC 9106); a
key check value in ``silo.json`` tells a wrong passphrase from a damaged file.

Its own trace: every access (open, store, read, list, purge, verify) appends a line to
``trace.log``, each line carrying an HMAC over itself and the previous line's HMAC: a
line edited, removed or reordered breaks the chain, and opening the silo checks it. (A
cut of the last lines leaves a valid chain; a copy of the trace elsewhere covers that.)

Identifiers no longer than needed: a document is stored with the end of its retention
(the user's request decides it), :meth:`Silo.purge` deletes what is past it; file names
and trace lines name a document by a keyed hash of its identity, never the identity.

Layout of the folder::

    silo.json           format, key derivation parameters, key check value
    objects/<h>.silo    one document (h = HMAC of its identity)
    trace.log           the access trace, one JSON line per access
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ensu_client._exceptions import (
    SiloDocumentNotFound,
    SiloError,
    SiloIntegrityError,
    SiloKeyError,
)

FORMAT = "ensu-silo/1"
MAGIC = b"ENSUSILO\x01"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # SP 800-38D §8.2: 96-bit nonces, random, one key per silo
TAG_BYTES = 16
SALT_BYTES = 16
KEY_CHECK_LABEL = b"ensu-silo key check"
GENESIS = "0" * 64
_HEADER = struct.Struct(">H")
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters: RFC 9106 §4's second recommendation (3 passes, 64 MiB) by
    default; lighter values only where the passphrase is not the only protection."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024  # KiB
    parallelism: int = 4


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One document read back from the silo, checked."""

    identity: str
    content: bytes
    metadata: Mapping[str, Any]
    stored_at: dt.datetime
    retain_until: dt.datetime
    reference: str | None


@dataclass(frozen=True, slots=True)
class SiloEntry:
    """What the silo holds for one document, without its content."""

    identity: str
    stored_at: dt.datetime
    retain_until: dt.datetime
    reference: str | None
    size: int


@dataclass(frozen=True, slots=True)
class TraceEntry:
    seq: int
    time: str
    action: str
    object: str | None
    reference: str | None
    user: str


@dataclass(frozen=True, slots=True)
class _Keys:
    content: bytes
    names: bytes
    trace: bytes
    check: bytes

    @classmethod
    def derive(cls, master: bytes) -> _Keys:
        """One key per use from the master (HKDF, RFC 5869)."""

        def sub(label: str) -> bytes:
            kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label.encode())
            return kdf.derive(master)

        return cls(
            sub("ensu-silo content"),
            sub("ensu-silo names"),
            sub("ensu-silo trace"),
            sub("ensu-silo check"),
        )

    def key_check(self) -> str:
        return hmac.new(self.check, KEY_CHECK_LABEL, hashlib.sha256).hexdigest()


def new_key_file(path: str | os.PathLike[str]) -> Path:
    """A new key file (32 random bytes, base64), readable by its owner only; never
    overwrites one."""
    target = Path(path)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
    return target


def _read_key_file(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == KEY_BYTES:
        return data
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SiloKeyError(f"{path}: a key file holds 32 bytes (raw or base64)")
    return key


def _master(
    settings: Mapping[str, Any], passphrase: str | None, key_file: str | os.PathLike[str] | None
) -> bytes:
    algorithm = settings.get("algorithm")
    if (passphrase is None) == (key_file is None):
        raise SiloKeyError("give either a passphrase or a key file")
    if algorithm == "key-file":
        if key_file is None:
            raise SiloKeyError("this silo is opened with a key file, not a passphrase")
        return _read_key_file(Path(key_file))
    if algorithm != "argon2id" or passphrase is None:
        raise SiloKeyError("this silo is opened with a passphrase, not a key file")
    return hash_secret_raw(
        passphrase.encode(),
        base64.b64decode(settings["salt"]),
        time_cost=int(settings["time_cost"]),
        memory_cost=int(settings["memory_cost"]),
        parallelism=int(settings["parallelism"]),
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("silo times are timezone-aware")
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Silo:
    """An opened silo. Make one with :meth:`create`, open it again with :meth:`open`."""

    def __init__(self, directory: Path, keys: _Keys) -> None:
        self.directory = directory
        self._keys = keys
        self._aead = AESGCM(keys.content)

    # -- opening --------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
        kdf: KdfParams | None = None,
    ) -> Silo:
        """A new, empty silo in ``directory`` (made private to its owner)."""
        folder = Path(directory)
        if (folder / "silo.json").exists():
            raise SiloError(f"{folder} already holds a silo")
        if passphrase is not None:
            params = kdf or KdfParams()
            salt = base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode()
            settings: dict[str, Any] = {"algorithm": "argon2id", "salt": salt}
            settings |= {"time_cost": params.time_cost, "memory_cost": params.memory_cost}
            settings |= {"parallelism": params.parallelism}
        else:
            settings = {"algorithm": "key-file"}
        keys = _Keys.derive(_master(settings, passphrase, key_file))
        (folder / "objects").mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        document = {"format": FORMAT, "key": settings, "keyCheck": keys.key_check()}
        _write_atomically(folder / "silo.json", json.dumps(document, indent=2).encode())
        silo = cls(folder, keys)
        silo._trace("create")
        return silo

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> Silo:
        """The silo of ``directory``: :class:`SiloKeyError` for a wrong passphrase or
        key file, :class:`SiloIntegrityError` when its trace was altered."""
        folder = Path(directory)
        try:
            document = json.loads((folder / "silo.json").read_bytes())
        except FileNotFoundError:
            raise SiloError(f"{folder} holds no silo (ensu-client silo init makes one)") from None
        except ValueError:
            raise SiloIntegrityError(f"{folder / 'silo.json'} is not readable JSON") from None
        if document.get("format") != FORMAT:
            raise SiloError(f"{folder}: unknown silo format {document.get('format')!r}")
        keys = _Keys.derive(_master(document["key"], passphrase, key_file))
        if not hmac.compare_digest(keys.key_check(), str(document.get("keyCheck", ""))):
            raise SiloKeyError("wrong passphrase or key file: the key check value does not match")
        silo = cls(folder, keys)
        silo.trace()  # the chain is checked before anything is done
        silo._trace("open")
        return silo

    # -- documents ------------------------------------------------------------------

    def _name(self, identity: str) -> str:
        return hmac.new(self._keys.names, identity.encode(), hashlib.sha256).hexdigest()

    def _path(self, identity: str) -> Path:
        return self.directory / "objects" / f"{self._name(identity)}.silo"

    def store(
        self,
        identity: str,
        *,
        content: bytes,
        metadata: Mapping[str, Any],
        retain_until: dt.datetime,
        reference: str | None = None,
        now: dt.datetime | None = None,
    ) -> SiloEntry:
        """Keep ``content`` and ``metadata`` under ``identity`` until ``retain_until``
        (replacing what was kept under it)."""
        moment = now or _now()
        if retain_until <= moment:
            raise ValueError("retain_until must be in the future")
        header = json.dumps(
            {"stored": _iso(moment), "retainUntil": _iso(retain_until)}, sort_keys=True
        ).encode()
        clear_metadata = json.dumps(
            {"identity": identity, "reference": reference, "metadata": dict(metadata)},
            sort_keys=True,
        ).encode()
        sealed_identity = self._seal("", b"identity", header, identity.encode())
        meta_part = self._seal(identity, b"metadata", header, clear_metadata)
        content_part = self._seal(identity, b"content", header, content)
        blob = b"".join(
            (
                MAGIC,
                _HEADER.pack(len(header)),
                header,
                _LENGTH.pack(len(sealed_identity)),
                sealed_identity,
                _LENGTH.pack(len(meta_part)),
                meta_part,
                content_part,
            )
        )
        _write_atomically(self._path(identity), blob)
        self._trace("store", identity=identity, reference=reference)
        return SiloEntry(identity, _parse_time(_iso(moment)), retain_until, reference, len(content))

    def read(self, identity: str) -> StoredDocument:
        """The document kept under ``identity``, decrypted and checked."""
        path = self._path(identity)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self._trace("read-absent", identity=identity)
            raise SiloDocumentNotFound(f"nothing stored under {identity}") from None
        try:
            header, _, meta_part, content_part = _split(blob)
            meta = json.loads(self._open(identity, b"metadata", header, meta_part))
            content = self._open(identity, b"content", header, content_part)
        except SiloIntegrityError:
            self._trace("read-refused", identity=identity)
            raise
        times = json.loads(header)
        self._trace("read", identity=identity, reference=meta.get("reference"))
        return StoredDocument(
            identity=identity,
            content=content,
            metadata=meta["metadata"],
            stored_at=_parse_time(times["stored"]),
            retain_until=_parse_time(times["retainUntil"]),
            reference=meta.get("reference"),
        )

    def entries(self) -> list[SiloEntry]:
        """What the silo holds (each file's metadata decrypted and checked)."""
        found = [self._entry(path) for path in self._objects()]
        self._trace("list")
        return sorted(found, key=lambda entry: (entry.stored_at, entry.identity))

    def _entry(self, path: Path) -> SiloEntry:
        """A file's entry: its identity (sealed apart, so that it can be listed), checked
        against the file's name, then its metadata opened under that identity."""
        header, sealed_identity, meta_part, content_part = _split(path.read_bytes())
        identity = self._open("", b"identity", header, sealed_identity).decode()
        if self._path(identity).name != path.name:
            raise SiloIntegrityError(f"{path.name}: the file holds another document (moved)")
        meta = json.loads(self._open(identity, b"metadata", header, meta_part))
        times = json.loads(header)
        return SiloEntry(
            identity,
            _parse_time(times["stored"]),
            _parse_time(times["retainUntil"]),
            meta.get("reference"),
            len(content_part) - NONCE_BYTES - TAG_BYTES,
        )

    def purge(self, *, now: dt.datetime | None = None) -> list[SiloEntry]:
        """Delete every document past its retention at ``now``; what was deleted."""
        moment = now or _now()
        purged: list[SiloEntry] = []
        damaged: list[str] = []
        for path in self._objects():
            try:
                entry = self._entry(path)
            except SiloIntegrityError:
                damaged.append(path.name)  # its retention cannot be trusted: kept, reported
                continue
            if entry.retain_until <= moment:
                path.unlink()
                self._trace("purge", identity=entry.identity, reference=entry.reference)
                purged.append(entry)
        self._trace("purge-run")
        if damaged:
            raise SiloIntegrityError(
                f"purged {len(purged)} document(s); {len(damaged)} file(s) failed their"
                f" integrity check and were left: {', '.join(damaged)}"
            )
        return purged

    def verify(self) -> int:
        """Every file and the trace checked; the number of documents."""
        count = 0
        for path in self._objects():
            entry = self._entry(path)
            header, _, _, content_part = _split(path.read_bytes())
            self._open(entry.identity, b"content", header, content_part)
            count += 1
        self.trace()
        self._trace("verify")
        return count

    def _objects(self) -> list[Path]:
        return sorted((self.directory / "objects").glob("*.silo"))

    def _seal(self, identity: str, part: bytes, header: bytes, data: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, _associated(identity, part, header))

    def _open(self, identity: str, part: bytes, header: bytes, sealed: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise SiloIntegrityError(
                f"{identity or 'a silo file'}: the {part.decode()} is truncated"
            )
        nonce, data = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, data, _associated(identity, part, header))
        except InvalidTag:
            raise SiloIntegrityError(
                f"{identity or 'a silo file'}: the {part.decode()} failed its integrity check"
                " (altered, or moved from another file)"
            ) from None

    # -- the trace ------------------------------------------------------------------

    @property
    def _trace_path(self) -> Path:
        return self.directory / "trace.log"

    def _trace(
        self, action: str, *, identity: str | None = None, reference: str | None = None
    ) -> None:
        """Append one line, chained to the last one, under an exclusive lock (several
        processes may share a silo)."""
        with self._trace_path.open("a+b") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            previous, seq = _last_link(log)
            entry = {
                "seq": seq + 1,
                "time": _iso(_now()),
                "action": action,
                "object": self._name(identity) if identity else None,
                "reference": reference,
                "user": getpass.getuser(),
                "prev": previous,
            }
            entry["mac"] = self._link(entry)
            log.write(json.dumps(entry, sort_keys=True).encode() + b"\n")
            log.flush()
            os.fsync(log.fileno())

    def _link(self, entry: Mapping[str, Any]) -> str:
        body = {name: value for name, value in entry.items() if name != "mac"}
        data = json.dumps(body, sort_keys=True).encode()
        return hmac.new(self._keys.trace, data, hashlib.sha256).hexdigest()

    def trace(self) -> list[TraceEntry]:
        """The whole trace, its chain checked: :class:`SiloIntegrityError` at the first
        line edited, removed or moved."""
        entries: list[TraceEntry] = []
        previous = GENESIS
        try:
            with self._trace_path.open("rb") as log:
                fcntl.flock(log, fcntl.LOCK_SH)  # no line half-written by another process
                lines = log.read().splitlines()
        except FileNotFoundError:
            lines = []
        if not lines:  # a silo's trace starts with its creation: none is an erased trace
            raise SiloIntegrityError("trace.log is missing or empty (erased)")
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
                valid = (
                    entry["prev"] == previous
                    and entry["seq"] == number
                    and hmac.compare_digest(self._link(entry), str(entry["mac"]))
                )
            except (ValueError, KeyError, TypeError):
                valid = False
            if not valid:
                raise SiloIntegrityError(f"trace.log line {number} breaks the chain (altered)")
            previous = entry["mac"]
            entries.append(
                TraceEntry(
                    entry["seq"],
                    entry["time"],
                    entry["action"],
                    entry["object"],
                    entry["reference"],
                    entry["user"],
                )
            )
        return entries

    def object_name(self, identity: str) -> str:
        """The keyed hash that stands for ``identity`` in file names and the trace."""
        return self._name(identity)


def _associated(identity: str, part: bytes, header: bytes) -> bytes:
    """The associated data: the format, the identity, the part, the clear header."""
    return b"\x00".join((MAGIC, identity.encode(), part, header))


def _split(blob: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The clear header and the sealed identity, metadata and content of a file."""
    try:
        if not blob.startswith(MAGIC):
            raise ValueError("magic")
        offset = len(MAGIC)
        (header_length,) = _HEADER.unpack_from(blob, offset)
        offset += _HEADER.size
        header = blob[offset : offset + header_length]
        offset += header_length
        parts: list[bytes] = []
        for _ in range(2):
            (length,) = _LENGTH.unpack_from(blob, offset)
            offset += _LENGTH.size
            parts.append(blob[offset : offset + length])
            offset += length
            if len(parts[-1]) != length:
                raise ValueError("truncated")
        json.loads(header)
    except (ValueError, struct.error):
        raise SiloIntegrityError("a silo file is malformed (altered or truncated)") from None
    return header, parts[0], parts[1], blob[offset:]


def _last_link(log: Any) -> tuple[str, int]:
    """The last line's HMAC and sequence number (the genesis for an empty trace)."""
    log.seek(0, os.SEEK_END)
    size = log.tell()
    if size == 0:
        return GENESIS, 0
    log.seek(max(0, size - 8192))
    tail = log.read().splitlines()
    try:
        last = json.loads(tail[-1])
        return str(last["mac"]), int(last["seq"])
    except (ValueError, KeyError, IndexError):
        raise SiloIntegrityError("trace.log ends with a damaged line") from None


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as output:
            output.write(data)
            output.flush()
            os.fsync(output.fileno())
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
