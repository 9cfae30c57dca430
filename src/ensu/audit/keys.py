"""The journal's Ed25519 signing key, which signs the checkpoints (R-TR-2).

Kept under ``var/journal/`` (``settings.var_dir / "journal"``):

- ``signing.key``: the private key, PKCS#8 PEM, mode 0600, created with ``O_EXCL`` so that
  two processes starting together agree on one key;
- ``signing.vkey``: the public verifier key in the signed-note form
  (``name+hash+base64``), the one thing an investigator needs (``ensu journal key``);
- ``checkpoint.note``: the latest signed checkpoint, kept outside the database
  (:mod:`ensu.audit.witness`, R-TR-2).

The key is generated on first use. Production must not discover later that it ran on a
key nobody published: a generation in production is logged as a warning that says to
back up the key and publish its verifier key. Several hosts appending to one PostgreSQL
journal share the same key files (deploy them like the TLS keys).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ensu import files
from ensu.audit.note import NoteSigner, NoteVerifier
from ensu.config import Environment, Settings

logger = logging.getLogger("ensu.audit")

PRIVATE_FILE = "signing.key"
VKEY_FILE = "signing.vkey"


class JournalKeyError(RuntimeError):
    """The journal key files are missing or unreadable."""


def journal_dir(settings: Settings) -> Path:
    return settings.var_dir / "journal"


def origin(settings: Settings) -> str:
    """The checkpoints' origin and key name: ``<public host>/ensu-journal``."""
    host = urlsplit(settings.public_url).hostname or "localhost"
    return f"{host}/ensu-journal"


def load_or_create_signer(settings: Settings) -> NoteSigner:
    """The journal's signer; generated (and logged) on first use."""
    folder = journal_dir(settings)
    path = folder / PRIVATE_FILE
    if not path.exists():
        _generate(settings, folder)
    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise JournalKeyError(f"cannot read the journal key {path}: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise JournalKeyError(f"{path} is not an Ed25519 key")
    name = _vkey_name(folder) or origin(settings)
    signer = NoteSigner(name, private)
    _write_public(folder, signer.verifier)
    return signer


def load_verifier(settings: Settings) -> NoteVerifier:
    """The verifier key only (what ``verify`` needs: no private key)."""
    path = journal_dir(settings) / VKEY_FILE
    try:
        return NoteVerifier.from_vkey(path.read_text())
    except OSError:
        if (journal_dir(settings) / PRIVATE_FILE).exists():
            return load_or_create_signer(settings).verifier
        raise JournalKeyError(f"no journal verifier key at {path}") from None


def _generate(settings: Settings, folder: Path) -> None:
    files.private_dir(folder)
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    try:
        descriptor = os.open(folder / PRIVATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first: use that one
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    level = logging.WARNING if settings.environment is Environment.PRODUCTION else logging.INFO
    logger.log(
        level,
        "generated a new journal signing key in %s: back it up and publish its verifier key "
        "(ensu journal key)",
        folder,
    )


def _vkey_name(folder: Path) -> str | None:
    try:
        return (folder / VKEY_FILE).read_text().split("+", 1)[0] or None
    except OSError:
        return None


def _write_public(folder: Path, verifier: NoteVerifier) -> None:
    path = folder / VKEY_FILE
    try:
        if path.read_text().strip() == verifier.vkey:
            return
    except OSError:
        pass
    files.write_private(path, (verifier.vkey + "\n").encode())
