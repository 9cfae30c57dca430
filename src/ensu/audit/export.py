"""The investigation bundle: a consumer's journal over a period, provable offline (R-TR-3).

A bundle (JSON, ``"format": "ensu-journal-bundle/1"``) holds:

- ``query``: the téléservice and the period ``[from, to)`` (UTC), and the case
  reference (``referenceDemande``) when the export is of one case;
- ``checkpoint``: a signed checkpoint made for the export (covering every record so far);
- ``key``: the journal's verifier key (signed-note ``vkey``) — the investigator should
  compare its key hash with the one the producer published;
- ``entries``: each record of that téléservice in the period (calls, and the events that
  concern it), in index order: its ``index``, ``leaf_hash``, ``record`` (the exact
  canonical bytes, base64; ``null`` once purged), ``content`` (the same, decoded, for
  reading) and ``proof``, its RFC 9162 §2.1.3 inclusion proof in the checkpoint's tree.

:mod:`ensu.audit.offline` checks a bundle with no database and no network. A bundle
proves that each record is in the signed log, unaltered, at its position; it cannot
prove that no record of the period was left out (a Merkle log proves inclusion, not
completeness of a query), so the export takes the records from the store's index and
reports how many there were.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import select

from ensu.audit import store
from ensu.audit.models import JournalLeaf
from ensu.audit.note import NoteSigner, format_time
from ensu.audit.store import JournalStore, StoredCheckpoint
from ensu.audit.writer import checkpoint_now

FORMAT = "ensu-journal-bundle/1"
PROOF_BATCH = 512


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def export_bundle(
    journal: JournalStore,
    signer: NoteSigner,
    *,
    id_teleservice: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    reference: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The bundle of ``id_teleservice``'s records with ``start <= at < end``; with
    ``reference``, only the calls that carried that ``referenceDemande`` (the journal of
    one case, R-TR-1, R-TR-3)."""
    checkpoint = await checkpoint_now(journal, signer, now)
    async with journal.read() as connection:
        query = (
            select(JournalLeaf.leaf_index, JournalLeaf.leaf_hash, JournalLeaf.record)
            .where(JournalLeaf.id_teleservice == id_teleservice)
            .where(JournalLeaf.at >= start, JournalLeaf.at < end)
            .where(JournalLeaf.leaf_index < checkpoint.tree_size)
            .order_by(JournalLeaf.leaf_index)
        )
        rows = (await connection.execute(query)).all()
        if reference is not None:
            rows = [row for row in rows if _reference(row.record) == reference]
        tiles = store.TileReader(connection)
        entries: list[dict[str, Any]] = []
        for offset in range(0, len(rows), PROOF_BATCH):
            batch = rows[offset : offset + PROOF_BATCH]
            proofs = await tiles.inclusion_proofs(
                [int(row.leaf_index) for row in batch], checkpoint.tree_size
            )
            entries.extend(_entry(row, proof) for row, proof in zip(batch, proofs, strict=True))
            if progress is not None:
                progress(len(entries), len(rows))
    return _bundle(
        signer=signer,
        checkpoint=checkpoint,
        id_teleservice=id_teleservice,
        start=start,
        end=end,
        now=now,
        entries=entries,
        reference=reference,
    )


def _reference(record: bytes | None) -> str | None:
    """The ``reference_demande`` of a stored record (None once purged, or for an event)."""
    if record is None:
        return None
    value = orjson.loads(record).get("reference_demande")
    return value if isinstance(value, str) else None


def _entry(row: Any, proof: list[bytes]) -> dict[str, Any]:
    record: bytes | None = row.record
    return {
        "index": int(row.leaf_index),
        "leaf_hash": _b64(row.leaf_hash),
        "record": None if record is None else _b64(record),
        "content": None if record is None else orjson.loads(record),
        "proof": [_b64(node) for node in proof],
    }


def _bundle(
    *,
    signer: NoteSigner,
    checkpoint: StoredCheckpoint,
    id_teleservice: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    entries: list[dict[str, Any]],
    reference: str | None,
) -> dict[str, Any]:
    query = {"id_teleservice": id_teleservice, "from": format_time(start), "to": format_time(end)}
    if reference is not None:
        query["reference"] = reference
    return {
        "format": FORMAT,
        "created_at": format_time(now),
        "query": query,
        "key": {"vkey": signer.verifier.vkey, "key_id": signer.key_id},
        "checkpoint": checkpoint.note,
        "entries": entries,
    }
