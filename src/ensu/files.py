"""The service's own files, private to its user whatever the umask (R-TR-2; OWASP API
Security Top 10 2023, API8 "Security Misconfiguration").

The state under ``var/`` — the SQLite database, the journal (``journal.db``), the quota
counters (``quota.db``), their ``-wal`` and ``-shm``, the blobs, the journal's keys and
kept checkpoint — holds fiscal documents, call records and keys. Under the usual umask
022 every one of them was created readable by all the machine's users. Here each folder
is created 0700 and each file 0600, whatever the umask; what already exists is left as
the operator set it (a blob folder shared with nginx's group, say).

SQLite gives a database's ``-wal`` and ``-shm`` the mode of the database file itself, so
creating that file 0600 before SQLite opens it is enough for all three.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a folder; each folder created for it (parents included) is 0700."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # another process made it meanwhile: as it made it
        os.chmod(folder, PRIVATE_DIR)  # the umask may have taken bits off mkdir's mode
    return path


def private_file(path: Path) -> Path:
    """``path`` created empty with mode 0600 (its folder as :func:`private_dir`), unless
    it exists."""
    private_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return path
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)
    return path


def sqlite_file(url: str) -> None:
    """Create the file of an ``sqlite`` URL 0600 before SQLite does (0644 under umask
    022, and its ``-wal``/``-shm`` after it); nothing for ``:memory:``."""
    database = url.split("///", 1)[-1].split("?", 1)[0]
    if database and database != ":memory:":
        private_file(Path(database))


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically, the file 0600 from its creation."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), PRIVATE_FILE)
        file.write(data)
    os.replace(temporary, path)


def write_durable(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably, the file 0600 from its
    creation (its folder as :func:`private_dir`): a temporary file of a unique name
    (``mkstemp``, so that writers of the same content never share one), fsynced, then
    renamed; on a failure the temporary file is removed."""
    private_dir(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
