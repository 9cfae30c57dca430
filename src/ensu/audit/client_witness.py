"""A consumer's witness of the ENSU journal, self-contained (R-TR-2): copy this file.

It imports nothing from ``ensu`` — the standard library and ``cryptography`` only — so
that the consumer's SDK can carry it as it is. The same checks as
:func:`ensu.audit.witness.check_answer` (which the tests compare it with):

1. ``GET /ensudocuments/v1/journal/coherence?depuis=<size kept>`` (or
   ``.../pointControle`` on the first visit) answers the latest signed checkpoint;
2. its signed note must verify with the journal key the operator *published* (its
   signed-note ``vkey``, never the ``cle`` of the answer);
3. from the checkpoint the client kept, the RFC 9162 §2.1.4.2 consistency proof must
   verify: a smaller tree, another root or a bad proof mean the journal the client saw
   was cut or replaced (:class:`Rollback`), and so does a 404 (no checkpoint signed)
   or a 400 on ``depuis`` (beyond the journal) once a checkpoint was kept;
4. the client then keeps the new checkpoint (its ``note``).

    kept = None
    answer = get(".../journal/pointControle")          # {"note": ..., ...}
    kept = witness({"pointControle": answer}, VKEY, kept)
    ...
    answer = get(f".../journal/coherence?depuis={kept.size}")
    kept = witness(answer, VKEY, kept)                  # raises Rollback if cut
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Rollback(ValueError):
    """The journal no longer extends the checkpoint kept, or the answer is not signed."""


@dataclass(frozen=True, slots=True)
class Kept:
    """What a client keeps of a verified checkpoint."""

    size: int
    root: bytes
    note: str


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_consistency(
    old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``(old_size, old_root)`` a prefix of the tree
    ``(new_size, new_root)``? Trivial cases: from 0 (nothing to prove) and equal sizes
    (equal roots), both with an empty proof."""
    if new_size < old_size or old_size < 0:
        return False
    if old_size == 0:
        return not proof
    if old_size == new_size:
        return old_root == new_root and not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: an exact power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0  # step 7


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Rollback(f"bad base64: {text[:16]!r}") from None


def open_note(note: str, vkey: str) -> Kept:
    """The checkpoint of a C2SP signed note if the key ``vkey`` (``name+hash+key``)
    signed it; :class:`Rollback` otherwise."""
    name, key_hash, encoded = vkey.strip().split("+", 2)
    key = _b64(encoded)
    if len(key) != 33 or key[:1] != b"\x01":
        raise Rollback("not an Ed25519 verifier key")
    expected = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if expected.hex() != key_hash:
        raise Rollback("the verifier key's hash does not match its name and key")
    body, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise Rollback("not a signed note")
    body += "\n"
    for line in signatures[:-1].split("\n"):
        signer, _, blob = line.removeprefix("\u2014 ").partition(" ")
        raw = _b64(blob)
        if signer == name and raw[:4] == expected and len(raw) == 68:
            try:
                Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[4:], body.encode())
            except InvalidSignature:
                raise Rollback("the checkpoint signature does not verify") from None
            break
    else:
        raise Rollback(f"the note has no signature by {name}")
    lines = body.split("\n")
    if lines[0] != name or len(lines) < 5 or not lines[1].isdigit():
        raise Rollback("not a checkpoint of this journal")
    root = _b64(lines[2])
    if len(root) != 32:
        raise Rollback("a root hash has 32 bytes")
    return Kept(size=int(lines[1]), root=root, note=note)


def witness(answer: Mapping[str, Any], vkey: str, kept: Kept | None) -> Kept:
    """Check a witness answer against the checkpoint ``kept`` (None: first visit); the
    checkpoint to keep next. Raises :class:`Rollback`."""
    try:
        point = answer["pointControle"]
        new = open_note(point["note"], vkey)
        proof = [_b64(node) for node in answer.get("preuve", [])]
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, Rollback):
            raise
        raise Rollback(f"the answer is not a signed checkpoint: {exc}") from None
    if (point.get("taille"), point.get("racine")) != (
        new.size,
        base64.b64encode(new.root).decode("ascii"),
    ):
        raise Rollback("the answer's fields differ from its signed note")
    if kept is None:
        return new
    if new.size < kept.size:
        raise Rollback(f"the journal has {new.size} leaves signed, {kept.size} were before")
    if answer.get("depuis") != kept.size:
        raise Rollback(f"the proof is not from the kept size {kept.size}")
    if not verify_consistency(kept.size, kept.root, new.size, new.root, proof):
        raise Rollback(f"the tree of {new.size} leaves does not extend the {kept.size} kept")
    return new
