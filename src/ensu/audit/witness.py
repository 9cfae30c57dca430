"""Witnesses of the journal: what makes a cut at its end visible (R-TR-2).

A Merkle log with signed checkpoints proves that nothing *inside* a signed tree changed;
it cannot show, from the database alone, that the end of the log was cut (the last
leaves, the checkpoints after them and the tiles beyond them, deleted together, leave a
smaller log that verifies). What shows it is a copy of the latest checkpoint held
somewhere else, compared with the log by a consistency proof (RFC 9162 §2.1.4), as the
witnesses of Certificate Transparency and of the transparency-dev ecosystem do (C2SP
``tlog-witness``). Three such copies, from the nearest to the farthest:

1. **The kept file**, ``var/journal/checkpoint.note`` beside the journal key: the signed
   note of the latest checkpoint, rewritten atomically (temporary file, fsync, rename)
   after each new signed checkpoint, never replaced by a smaller one nor by one whose
   predecessor is not in the journal (:class:`CheckpointWitness`). ``ensu journal
   verify`` and the app's integrity monitor at start compare the log with it
   (:func:`ensu.audit.verify.compare_kept`): a log smaller than it, without it, or with
   another root at its size is a breach (503 930002).
2. **An external witness**, if ``ENSU_JOURNAL_WITNESS_URL`` names one: each new
   checkpoint is pushed to its C2SP ``tlog-witness`` ``add-checkpoint`` endpoint with the
   consistency proof from the size the witness last acknowledged, best effort and
   bounded by ``ENSU_JOURNAL_WITNESS_TIMEOUT_SECONDS``; a witness that already holds a
   *larger* tree than the journal is logged as critical (a rollback).
3. **Every consumer**: the API serves the latest checkpoint
   (``GET /ensudocuments/v1/journal/pointControle``) and a consistency proof from any
   size the caller names (``GET /ensudocuments/v1/journal/coherence?depuis=N``,
   :func:`witness_answer`). A client that keeps the last checkpoint it verified checks
   the next one with :func:`check_answer` (or the self-contained copy in
   :mod:`ensu.audit.client_witness`, for the SDK): an intruder who controls the whole
   var directory, kept file included, is still seen by the consumers who witnessed the
   journal before the cut.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensu import files
from ensu.audit import keys, merkle, store
from ensu.audit.note import Checkpoint, NoteError, NoteVerifier, format_time
from ensu.audit.store import JournalStore, StoredCheckpoint
from ensu.config import Settings

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("ensu.audit")

KEPT_FILE = "checkpoint.note"
_LOCK_FILE = "checkpoint.lock"
#: The C2SP tlog-witness media type of a 409 answer: the size the witness holds.
TLOG_SIZE = "text/x.tlog.size"


# -- the kept file -----------------------------------------------------------------------


def kept_path(settings: Settings) -> Path:
    """``var/journal/checkpoint.note``: beside the journal key, outside the database."""
    return keys.journal_dir(settings) / KEPT_FILE


def read_kept(path: Path) -> str | None:
    """The signed note kept in ``path``; None when there is none (first start)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _size(note: str) -> int:
    return Checkpoint.parse(note.rpartition("\n\n")[0] + "\n").size


def write_kept(path: Path, note: str) -> bool:
    """Replace the kept note by ``note`` unless the kept one is as large or larger
    (several processes share the file: a lock orders them); atomically — temporary file,
    fsync, rename, fsync of the folder — so a crash leaves the old note or the new one.
    Whether it was written."""
    folder = path.parent
    files.private_dir(folder)
    descriptor = os.open(folder / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        current = read_kept(path)
        if current is not None and _size(current) >= _size(note):
            return False
        temporary = folder / f".{path.name}.{os.getpid()}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(note)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True
    finally:
        os.close(descriptor)  # releases the lock


class CheckpointWitness:
    """Keeps each new signed checkpoint outside the database and pushes it to the
    external witness, off the writer's commit path (module docstring, 1. and 2.)."""

    def __init__(
        self,
        journal: JournalStore,
        verifier: NoteVerifier,
        path: Path,
        *,
        witness_url: str = "",
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: how the pushes reach the witness (tests; default: the network)."""
        self.store = journal
        self.verifier = verifier
        self.path = path
        self.witness_url = witness_url
        self.timeout = timeout
        self.transport = transport
        #: The kept note this process knows to be in the journal (no need to look again).
        self._known: str | None = None
        #: The size the external witness acknowledged last (0: not yet known).
        self._witnessed = 0
        self._pending: StoredCheckpoint | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_settings(
        cls, settings: Settings, journal: JournalStore, verifier: NoteVerifier
    ) -> CheckpointWitness:
        return cls(
            journal,
            verifier,
            kept_path(settings),
            witness_url=settings.journal_witness_url,
            timeout=settings.journal_witness_timeout_seconds,
        )

    def offer(self, checkpoint: StoredCheckpoint) -> None:
        """A new checkpoint was committed: keep it (and push it) soon; only the latest
        of those offered meanwhile is kept."""
        if self._pending is None or checkpoint.tree_size > self._pending.tree_size:
            self._pending = checkpoint
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="journal-witness")

    async def flush(self) -> None:
        """Wait until what was offered is kept (and pushed): the writer's last step."""
        while self._task is not None and not self._task.done():
            await self._task

    async def _run(self) -> None:
        while self._pending is not None:
            checkpoint, self._pending = self._pending, None
            try:
                await self.keep(checkpoint)
            except Exception as exc:  # the journal itself is durable: log and go on
                logger.error("could not keep checkpoint %d: %r", checkpoint.tree_size, exc)
            if self.witness_url:
                await self.push(checkpoint)

    async def keep(self, checkpoint: StoredCheckpoint) -> bool:
        """Write ``checkpoint`` to the kept file if it extends the kept one, and the kept
        one is still in the journal: a journal that was cut (or a file that was
        tampered with) does not overwrite the evidence. Whether it was written."""
        current = await asyncio.to_thread(read_kept, self.path)
        if current is not None and current != self._known:
            try:
                kept = self.verifier.open(current)
            except NoteError as exc:
                logger.critical("the kept checkpoint %s does not verify (%s): kept", self.path, exc)
                return False
            if kept.size >= checkpoint.tree_size:
                return False
            async with self.store.read() as connection:
                stored = await store.checkpoints(connection, kept.size, kept.size)
            if not stored or stored[0].root_hash != kept.root:
                logger.critical(
                    "the kept checkpoint %d is no longer in the journal: the journal was cut"
                    " (R-TR-2); %s is left as it is",
                    kept.size,
                    self.path,
                )
                return False
        written = await asyncio.to_thread(write_kept, self.path, checkpoint.note)
        if written:
            self._known = checkpoint.note
        return written

    async def push(self, checkpoint: StoredCheckpoint) -> None:
        """C2SP tlog-witness ``add-checkpoint``: the note with the consistency proof from
        the size the witness holds; one retry after a 409 names that size."""
        try:
            for _ in range(2):
                status, body = await self._post(checkpoint, self._witnessed)
                if status == 200:
                    self._witnessed = checkpoint.tree_size
                    return
                if status == 409 and body.strip().isdigit():
                    held = int(body.strip())
                    if held > checkpoint.tree_size:
                        logger.critical(
                            "the external witness holds a tree of %d leaves, the journal"
                            " signed %d: the journal was cut (R-TR-2)",
                            held,
                            checkpoint.tree_size,
                        )
                        return
                    self._witnessed = held
                    continue
                break
            logger.warning("the external witness refused checkpoint %d", checkpoint.tree_size)
        except Exception as exc:  # best effort: the witness may be down
            logger.warning("could not push checkpoint %d: %r", checkpoint.tree_size, exc)

    async def _post(self, checkpoint: StoredCheckpoint, old: int) -> tuple[int, str]:
        import httpx  # noqa: PLC0415 - loaded only when a witness is configured

        async with self.store.read() as connection:
            proof = await store.TileReader(connection).consistency_proof(old, checkpoint.tree_size)
        lines = [f"old {old}", *(base64.b64encode(node).decode("ascii") for node in proof)]
        body = "\n".join(lines) + "\n\n" + checkpoint.note
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
            answer = await client.post(self.witness_url, content=body.encode("utf-8"))
        return answer.status_code, answer.text


# -- the witness route -------------------------------------------------------------------


class BeyondTheLog(ValueError):
    """A consistency proof was asked from a size larger than the latest checkpoint's."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the latest signed checkpoint has {size} leaves")
        self.size = size


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    """The latest signed checkpoint, and the proof asked for if any."""

    checkpoint: Checkpoint
    note: str
    vkey: str
    since: int | None = None
    proof: tuple[bytes, ...] = ()

    def checkpoint_json(self) -> dict[str, Any]:
        """The checkpoint in the contract's French words; ``note`` is what is signed."""
        checkpoint = self.checkpoint
        return {
            "origine": checkpoint.origin,
            "taille": checkpoint.size,
            "racine": base64.b64encode(checkpoint.root).decode("ascii"),
            "horodatage": format_time(checkpoint.time),
            "precedent": checkpoint.previous,
            "note": self.note,
            "cle": self.vkey,
        }

    def consistency_json(self) -> dict[str, Any]:
        return {
            "depuis": self.since,
            "taille": self.checkpoint.size,
            "preuve": [base64.b64encode(node).decode("ascii") for node in self.proof],
            "pointControle": self.checkpoint_json(),
        }


async def witness_answer(
    journal: JournalStore, verifier: NoteVerifier, *, since: int | None = None
) -> WitnessAnswer | None:
    """The latest checkpoint (None: none signed yet) and, if ``since`` is given, the
    RFC 9162 §2.1.4 proof that the tree of ``since`` leaves is a prefix of it; raises
    :class:`BeyondTheLog` when ``since`` is larger than its size. One snapshot."""
    async with journal.read() as connection:
        latest = await store.latest_checkpoint(connection)
        if latest is None:
            return None
        checkpoint = verifier.open(latest.note)
        if since is None:
            return WitnessAnswer(checkpoint, latest.note, verifier.vkey)
        if since > checkpoint.size:
            raise BeyondTheLog(checkpoint.size)
        proof = await store.TileReader(connection).consistency_proof(since, checkpoint.size)
    return WitnessAnswer(checkpoint, latest.note, verifier.vkey, since, tuple(proof))


# -- the client's check ------------------------------------------------------------------


def verify_consistency(
    old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, with the trivial cases: is the tree ``(old_size, old_root)`` a
    prefix of ``(new_size, new_root)`` by ``proof``? False when the new tree is smaller."""
    if new_size < old_size:
        return False
    return merkle.consistent(
        first=old_size, second=new_size, first_root=old_root, second_root=new_root, path=proof
    )


class WitnessError(ValueError):
    """What a client that kept a checkpoint concludes: the journal was cut or forked,
    or the answer cannot be trusted."""


def check_answer(
    answer: Mapping[str, Any], verifier: NoteVerifier, kept: Checkpoint | None
) -> Checkpoint:
    """Check an answer of ``GET .../journal/coherence?depuis=<kept size>`` against the
    checkpoint the client ``kept`` (None: the first visit); the new checkpoint to keep.

    The signature with the key the operator published (never the answer's ``cle``), the
    JSON fields against the signed note, then the consistency proof from ``kept``.
    Raises :class:`WitnessError` on any failure: a smaller tree, another root, a proof
    that does not verify all mean the journal the client witnessed was cut or replaced.
    """
    try:
        point = answer["pointControle"]
        checkpoint = verifier.open(point["note"])
        proof = [base64.b64decode(node, validate=True) for node in answer.get("preuve", [])]
    except (KeyError, TypeError, ValueError, NoteError) as exc:
        raise WitnessError(f"the answer is not a signed checkpoint: {exc}") from None
    fields = (point.get("taille"), point.get("racine"))
    if fields != (checkpoint.size, base64.b64encode(checkpoint.root).decode("ascii")):
        raise WitnessError("the answer's fields differ from its signed note")
    if kept is None:
        return checkpoint
    if checkpoint.size < kept.size:
        raise WitnessError(
            f"rollback: the journal's latest checkpoint has {checkpoint.size} leaves,"
            f" {kept.size} were signed before"
        )
    if answer.get("depuis") != kept.size:
        raise WitnessError(f"the proof is not from the kept size {kept.size}")
    if not verify_consistency(kept.size, kept.root, checkpoint.size, checkpoint.root, proof):
        raise WitnessError(
            f"the tree of {checkpoint.size} leaves does not extend the one of {kept.size}"
            " kept: the journal was replaced"
        )
    return checkpoint
