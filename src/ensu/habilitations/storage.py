"""The attachments of habilitation requests: PDFs only, size-limited, content-addressed.

The ideas of ``ensu.documents.storage`` (a file's name is its SHA-256; written through
:func:`ensu.files.write_durable`, a temporary file fsynced then renamed; every read
hashed again), in this feature's own folder ``{var_dir}/habilitations/attachments``
(mode 0700; files 0600: homologation attestations and legal analyses are not for every
local user).

A PDF is recognised by its signature, ``%PDF-`` in the first 1024 bytes (ISO 32000-1
§7.5.2 lets a few bytes precede it), never by its name or declared type.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from ensu import files
from ensu.config import Settings
from ensu.habilitations.errors import AttachmentRefused

#: DataPass's limit for its PDFs.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
PDF_SIGNATURE = b"%PDF-"
SIGNATURE_WINDOW = 1024


def is_pdf(data: bytes) -> bool:
    """``%PDF-`` in the first kilobyte (ISO 32000-1 §7.5.2)."""
    return PDF_SIGNATURE in data[:SIGNATURE_WINDOW]


def check_pdf(data: bytes, *, max_bytes: int = MAX_ATTACHMENT_BYTES) -> None:
    """Refuse what is empty, too large or not a PDF (French messages)."""
    if not data:
        raise AttachmentRefused("le fichier est vide")
    if len(data) > max_bytes:
        raise AttachmentRefused(f"le fichier dépasse {max_bytes // (1024 * 1024)} Mo")
    if not is_pdf(data):
        raise AttachmentRefused("seuls les fichiers PDF sont acceptés")


class AttachmentStore:
    """PDF files under ``root``, named by their SHA-256 (hex)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_settings(cls, settings: Settings) -> AttachmentStore:
        return cls(settings.var_dir / "habilitations" / "attachments")

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        """Check and store ``data`` (idempotent); its SHA-256, hex."""
        check_pdf(data)
        name = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, name, data)
        return name

    def _write(self, name: str, data: bytes) -> None:
        path = self.path_for(name)
        if path.exists():
            return
        for directory in (self.root, path.parent):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        files.write_durable(path, data)  # 0600, fsynced, renamed

    async def get(self, sha256: str) -> bytes:
        """The stored bytes, verified against their name."""
        try:
            data = await asyncio.to_thread(self.path_for(sha256).read_bytes)
        except FileNotFoundError:
            raise AttachmentRefused("pièce jointe introuvable") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise AttachmentRefused("pièce jointe altérée : son empreinte ne correspond plus")
        return data
