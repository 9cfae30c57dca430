"""Signed checkpoints of the journal: C2SP ``tlog-checkpoint`` in a C2SP ``signed-note``.

Only the standard library and ``cryptography``, for the offline checker (R-TR-3).

A checkpoint commits to the journal's tree (R-TR-2)::

    <origin>                      e.g. "ensu.example.fr/journal"
    <tree size, decimal>
    <root hash, base64>
    time <UTC, RFC 3339, ms>      an extension line: when the checkpoint was made
    previous <tree size>          an extension line: the size of the checkpoint signed
                                  just before this one (absent from the first)

The signed note appends a blank line and one signature line per key::

    — <key name> <base64(key hash[4] || Ed25519 signature[64])>

where the key hash is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]`` and the
signature covers the checkpoint text exactly. The ``previous`` line chains the
checkpoints (R-TR-2): a deleted checkpoint leaves its successor naming a size that is no
longer there, which verification reports (see :mod:`ensu.audit.verify`). A verifier
key is published in the signed-note ``vkey`` form
``<name>+<key hash, hex>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "
_NAME = re.compile(r"[^\s+]+")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class NoteError(ValueError):
    """A checkpoint or signed note that does not parse or does not verify."""


def format_time(moment: dt.datetime) -> str:
    """UTC with milliseconds and a ``Z``: the journal's one time format."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime(_TIME_FORMAT)[:-4] + "Z"


def parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise NoteError(f"not a journal time: {text!r}") from None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a checkpoint says: this origin's tree had ``size`` leaves and this ``root``."""

    origin: str
    size: int
    root: bytes
    time: dt.datetime
    #: The size of the checkpoint signed before this one; None for the first (and for
    #: the checkpoints written before the chain existed).
    previous: int | None = None

    def body(self) -> str:
        """The checkpoint text (the signed message), ending with a newline."""
        root = base64.b64encode(self.root).decode("ascii")
        text = f"{self.origin}\n{self.size}\n{root}\ntime {format_time(self.time)}\n"
        return text if self.previous is None else f"{text}previous {self.previous}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) not in (5, 6) or lines[-1] != "" or not lines[3].startswith("time "):
            raise NoteError("a checkpoint has four lines (origin, size, root, time) or five")
        origin, size, root, time = lines[0], lines[1], lines[2], lines[3][5:]
        if not _NAME.fullmatch(origin) or not _decimal(size):
            raise NoteError("bad checkpoint origin or size")
        previous = None
        if len(lines) == 6:
            named = lines[4].removeprefix("previous ")
            if named == lines[4] or not _decimal(named) or int(named) >= int(size):
                raise NoteError("bad previous checkpoint line")
            previous = int(named)
        checkpoint = cls(origin, int(size), _b64(root, 32), parse_time(time), previous)
        if checkpoint.body() != body:
            raise NoteError("the checkpoint is not in canonical form")
        return checkpoint


def _decimal(text: str) -> bool:
    """A canonical non-negative decimal (no sign, no leading zero, ASCII digits only)."""
    return text.isascii() and text.isdigit() and text == str(int(text))


def _b64(text: str, length: int | None = None) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"bad base64: {text[:16]!r}") from None
    if length is not None and len(value) != length:
        raise NoteError(f"expected {length} bytes, got {len(value)}")
    return value


def key_hash(name: str, public: bytes) -> bytes:
    """The signed-note key hash of an Ed25519 key: ``SHA-256(name \\n 0x01 key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


class NoteSigner:
    """Signs checkpoints with the journal's Ed25519 key under the name ``name``."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        if not _NAME.fullmatch(name):
            raise NoteError(f"a key name has no spaces and no '+': {name!r}")
        self.name = name
        self._private = private
        self.verifier = NoteVerifier(name, private.public_key())

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note of ``checkpoint`` (its text, a blank line, the signature)."""
        body = checkpoint.body()
        signature = self._private.sign(body.encode())
        blob = base64.b64encode(self.verifier.hash + signature).decode("ascii")
        return f"{body}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"

    def signature_of(self, note: str) -> bytes:
        """The raw 64-byte signature in a note this signer made."""
        return self.verifier.signature_in(note)


class NoteVerifier:
    """Verifies signed checkpoints against one published Ed25519 key."""

    def __init__(self, name: str, public: Ed25519PublicKey) -> None:
        self.name = name
        self.public = public
        self.hash = key_hash(name, _raw(public))

    @property
    def key_id(self) -> str:
        return self.hash.hex()

    @property
    def vkey(self) -> str:
        """The signed-note verifier key: ``name+hash+base64(0x01 || key)``."""
        encoded = base64.b64encode(ED25519 + _raw(self.public)).decode("ascii")
        return f"{self.name}+{self.key_id}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+", 2)  # base64 may hold '+': split twice only
        if len(parts) != 3:
            raise NoteError("a verifier key reads name+hash+key")
        name, hash_hex, encoded = parts
        key = _b64(encoded, 33)
        if key[:1] != ED25519:
            raise NoteError("only Ed25519 verifier keys are supported")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(key[1:]))
        if verifier.key_id != hash_hex:
            raise NoteError("the verifier key's hash does not match its name and key")
        return verifier

    def signature_in(self, note: str) -> bytes:
        body, lines = _split(note)
        del body
        for line in lines:
            name, _, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
            raw = _b64(blob)
            if name == self.name and raw[:4] == self.hash and len(raw) == 68:
                return raw[4:]
        raise NoteError(f"the note has no signature by {self.name} ({self.key_id})")

    def open(self, note: str) -> Checkpoint:
        """The checkpoint of ``note`` if this key signed it; otherwise :class:`NoteError`."""
        body, _ = _split(note)
        try:
            self.public.verify(self.signature_in(note), body.encode())
        except InvalidSignature:
            raise NoteError("the checkpoint signature does not verify") from None
        checkpoint = Checkpoint.parse(body)
        if checkpoint.origin != self.name:
            raise NoteError(f"the checkpoint is for {checkpoint.origin}, not {self.name}")
        return checkpoint


def _split(note: str) -> tuple[str, list[str]]:
    body, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise NoteError("a signed note is its text, a blank line and signature lines")
    lines = signatures[:-1].split("\n")
    if not all(line.startswith(SIGNATURE_PREFIX) for line in lines):
        raise NoteError("malformed signature line")
    return body + "\n", lines
