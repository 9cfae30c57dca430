"""Signed checkpoints: C2SP tlog-checkpoint text in a C2SP signed note (R-TR-2)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ensu.audit.note import Checkpoint, NoteError, NoteSigner, NoteVerifier

NAME = "journal.test/ensu-journal"
MOMENT = dt.datetime(2026, 3, 2, 9, 30, 5, 123000, tzinfo=dt.UTC)
CHECKPOINT = Checkpoint(origin=NAME, size=42, root=bytes(range(32)), time=MOMENT)


def test_checkpoint_text_is_the_c2sp_form() -> None:
    root = base64.b64encode(bytes(range(32))).decode()
    assert CHECKPOINT.body() == f"{NAME}\n42\n{root}\ntime 2026-03-02T09:30:05.123Z\n"
    assert Checkpoint.parse(CHECKPOINT.body()) == CHECKPOINT


@pytest.mark.parametrize(
    "body",
    [
        f"{NAME}\n042\nAAAA\ntime 2026-03-02T09:30:05.123Z\n",
        f"{NAME}\n42\n{base64.b64encode(bytes(31)).decode()}\ntime 2026-03-02T09:30:05.123Z\n",
        f"{NAME}\n42\n{base64.b64encode(bytes(32)).decode()}\n",
        f"bad name\n42\n{base64.b64encode(bytes(32)).decode()}\ntime 2026-03-02T09:30:05.123Z\n",
        f"{NAME}\n42\n{base64.b64encode(bytes(32)).decode()}\ntime yesterday\n",
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_signed_note_key_hash_signature_and_vkey() -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signer = NoteSigner(NAME, private)
    expected_hash = hashlib.sha256(NAME.encode() + b"\n\x01" + public).digest()[:4]
    assert signer.key_id == expected_hash.hex()
    note = signer.sign(CHECKPOINT)
    body, _, signature_line = note.partition("\n\n")
    assert body + "\n" == CHECKPOINT.body()
    prefix = f"\u2014 {NAME} "
    assert signature_line.startswith(prefix)
    assert signature_line.endswith("\n")
    blob = base64.b64decode(signature_line[len(prefix) : -1])
    assert blob[:4] == expected_hash
    assert len(blob) == 68
    private.public_key().verify(blob[4:], CHECKPOINT.body().encode())
    assert signer.verifier.open(note) == CHECKPOINT
    encoded = base64.b64encode(b"\x01" + public).decode()
    assert signer.verifier.vkey == f"{NAME}+{expected_hash.hex()}+{encoded}"
    assert NoteVerifier.from_vkey(signer.verifier.vkey).open(note) == CHECKPOINT


def test_tampered_or_foreign_notes_are_refused() -> None:
    signer = NoteSigner(NAME, Ed25519PrivateKey.generate())
    note = signer.sign(CHECKPOINT)
    with pytest.raises(NoteError, match="does not verify"):
        signer.verifier.open(note.replace("\n42\n", "\n43\n"))
    other = NoteSigner(NAME, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="no signature"):
        other.verifier.open(note)
    with pytest.raises(NoteError):
        signer.verifier.open(CHECKPOINT.body())
    foreign = Checkpoint(origin="other.test/log", size=1, root=bytes(32), time=MOMENT)
    with pytest.raises(NoteError, match=r"is for other\.test/log"):
        signer.verifier.open(signer.sign(foreign))


def test_vkeys_are_checked() -> None:
    vkey = NoteSigner(NAME, Ed25519PrivateKey.generate()).verifier.vkey
    name, key_hash, key = vkey.split("+", 2)
    with pytest.raises(NoteError, match="hash"):
        NoteVerifier.from_vkey(f"{name}+00000000+{key}")
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(f"{name}+{key_hash}")
    with pytest.raises(NoteError):
        NoteSigner("has space", Ed25519PrivateKey.generate())
