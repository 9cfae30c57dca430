"""Tamper evidence (R-TR-2): every way to change the journal behind its back is found,
named precisely, and stops operations until an operator restores a verified state."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ensu.audit import merkle, store
from ensu.audit.errors import JournalIntegrityStop
from ensu.audit.integrity import IntegrityMonitor, ResumeRefused, open_alarm, resume
from ensu.audit.note import NoteSigner
from ensu.audit.records import CallRecord, encode
from ensu.audit.store import JournalStore
from ensu.audit.verify import Problem, verify
from ensu.audit.writer import JournalWriter
from tests.unit.audit.conftest import T0, Tamper, call, fill

pytestmark = pytest.mark.anyio

Case = Callable[[Tamper, JournalStore], Awaitable[None]]


def _forged(number: int) -> CallRecord:
    """Call ``number`` as an attacker would rewrite it: another caller IP."""
    return dataclasses.replace(call(number), ip="198.51.100.66")


async def _record(journal: JournalStore, index: int) -> bytes:
    async with journal.read() as connection:
        rows = await store.leaves(connection, index, 1)
    record: bytes = rows[0].record
    return record


async def edit_a_record(tamper: Tamper, journal: JournalStore) -> None:
    original = await _record(journal, 5)
    tamper(
        "UPDATE journal_leaves SET record = %s WHERE leaf_index = 5",
        original.replace(b"DOC5", b"DOC6"),
    )


async def edit_a_record_and_its_leaf_hash(tamper: Tamper, journal: JournalStore) -> None:
    forged = encode(_forged(5))
    tamper(
        "UPDATE journal_leaves SET record = %s, leaf_hash = %s WHERE leaf_index = 5",
        forged,
        merkle.leaf_hash(forged),
    )


async def rebuild_the_log_after_a_checkpoint(tamper: Tamper, journal: JournalStore) -> None:
    """Leaf 150 replaced, and every hash above it recomputed: only signatures remain."""
    forged = encode(_forged(150))
    async with journal.read() as connection:
        hashes = await store.leaf_hashes(connection, 0, 300)
    hashes[150] = merkle.leaf_hash(forged)
    tamper(
        "UPDATE journal_leaves SET record = %s, leaf_hash = %s WHERE leaf_index = 150",
        forged,
        hashes[150],
    )
    compact = merkle.CompactRange()
    for leaf in hashes:
        compact.append(leaf, lambda p: _rewrite_tile(tamper, p))


def _rewrite_tile(tamper: Tamper, piece: merkle.Piece) -> None:
    if store.stored_level(piece):
        tamper(
            "UPDATE journal_nodes SET hash = %s WHERE level = %s AND node_index = %s",
            piece.hash,
            piece.level,
            piece.index,
        )


async def delete_a_row(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("DELETE FROM journal_leaves WHERE leaf_index = 7")


async def swap_two_rows(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("UPDATE journal_leaves SET leaf_index = -1 WHERE leaf_index = 3")
    tamper("UPDATE journal_leaves SET leaf_index = 3 WHERE leaf_index = 4")
    tamper("UPDATE journal_leaves SET leaf_index = 4 WHERE leaf_index = -1")


async def insert_a_row(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("UPDATE journal_leaves SET leaf_index = leaf_index + 100000 WHERE leaf_index >= 10")
    tamper("UPDATE journal_leaves SET leaf_index = leaf_index - 99999 WHERE leaf_index >= 10")
    forged = encode(_forged(10))
    tamper(
        "INSERT INTO journal_leaves (leaf_index, leaf_hash, record, kind, retention, at,"
        " id_teleservice) VALUES (10, %s, %s, 'call', 'exchange', %s, 'TS-A')",
        merkle.leaf_hash(forged),
        forged,
        call(10).at.replace(tzinfo=None),
    )


async def truncate_the_log(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("DELETE FROM journal_leaves WHERE leaf_index >= 250")


async def change_an_indexed_column(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("UPDATE journal_leaves SET id_teleservice = 'TS-B' WHERE leaf_index = 9")


async def empty_a_record_without_purge(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("UPDATE journal_leaves SET record = NULL WHERE leaf_index = 2")


async def change_a_tile(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("UPDATE journal_nodes SET hash = %s WHERE level = 8 AND node_index = 0", bytes(32))


async def delete_a_tile(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("DELETE FROM journal_nodes WHERE level = 8 AND node_index = 0")


async def add_a_tile(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("INSERT INTO journal_nodes (level, node_index, hash) VALUES (8, 9, %s)", bytes(32))


async def change_a_signed_root(tamper: Tamper, journal: JournalStore) -> None:
    async with journal.read() as connection:
        note = (await store.checkpoints(connection, 300, 300))[0].note
    lines = note.split("\n")
    lines[2] = "A" * 43 + "="
    tamper("UPDATE journal_checkpoints SET note = %s WHERE tree_size = 300", "\n".join(lines))


async def change_a_root_column(tamper: Tamper, _journal: JournalStore) -> None:
    tamper("UPDATE journal_checkpoints SET root_hash = %s WHERE tree_size = 200", bytes(32))


CASES: dict[str, tuple[Case, str, int | None]] = {
    "edit": (edit_a_record, "leaf_hash_mismatch", 5),
    "edit_and_rehash": (edit_a_record_and_its_leaf_hash, "checkpoint_root_mismatch", None),
    "rebuild_after_checkpoint": (
        rebuild_the_log_after_a_checkpoint,
        "checkpoint_root_mismatch",
        None,
    ),
    "delete": (delete_a_row, "gap", 8),
    "reorder": (swap_two_rows, "checkpoint_root_mismatch", None),
    "insert": (insert_a_row, "checkpoint_root_mismatch", None),
    "truncate": (truncate_the_log, "truncated", 250),
    "columns": (change_an_indexed_column, "columns_mismatch", 9),
    "unpurged_empty_record": (empty_a_record_without_purge, "record_missing", 2),
    "tile_changed": (change_a_tile, "tile_mismatch", 0),
    "tile_deleted": (delete_a_tile, "tile_mismatch", 0),
    "tile_added": (add_a_tile, "tiles_mismatch", None),
    "signed_root": (change_a_signed_root, "checkpoint_signature", None),
    "root_column": (change_a_root_column, "checkpoint_columns", None),
}


async def test_an_untouched_journal_verifies(writer: JournalWriter, signer: NoteSigner) -> None:
    await fill(writer, 300)
    result = await verify(writer.store, signer.verifier, chunk=128)
    assert result.ok, result.problem
    assert (result.size, result.checkpoints, result.purged) == (300, 3, 0)
    assert result.latest is not None
    assert result.latest.tree_size == 300


@pytest.mark.parametrize("case", list(CASES))
async def test_every_tampering_is_detected_and_named(
    case: str, writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    """R-TR-2: edit, delete, reorder, insert, truncate, rebuild after a checkpoint..."""
    change, code, index = CASES[case]
    await fill(writer, 300)
    await change(tamper, writer.store)
    result = await verify(writer.store, signer.verifier, chunk=128)
    assert result.problem is not None
    assert result.problem.code == code, result.problem
    assert result.problem.index == index, result.problem
    if code == "checkpoint_root_mismatch":
        assert "leaves no longer hash to the root signed" in result.problem.message


async def test_the_rebuilt_log_fails_at_the_first_checkpoint_after_the_change(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    await rebuild_the_log_after_a_checkpoint(tamper, writer.store)
    result = await verify(writer.store, signer.verifier)
    assert result.problem is not None
    assert "the first 200 leaves" in result.problem.message
    assert "after checkpoint 100" in result.problem.message
    assert result.checkpoints == 1


async def test_a_checkpoint_signed_by_another_key_is_refused(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    await fill(writer, 100)
    stranger = NoteSigner(signer.name, Ed25519PrivateKey.generate())
    result = await verify(writer.store, stranger.verifier)
    assert result.problem is not None
    assert result.problem.code == "checkpoint_signature"


# -- the monitor -----------------------------------------------------------------------


def _monitor(writer: JournalWriter, signer: NoteSigner) -> IntegrityMonitor:
    return IntegrityMonitor(writer.store, signer.verifier, interval=3600, scrub_leaves=10_000)


async def test_the_monitor_stops_on_a_breach_in_every_process_until_resumed(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    """R-TR-2: a detected breach stops operations until integrity is restored."""
    await fill(writer, 300)
    monitor = _monitor(writer, signer)
    await monitor.start()
    try:
        assert not monitor.stopped
        original = await _record(writer.store, 5)
        await edit_a_record(tamper, writer.store)
        await monitor.check()
        assert monitor.stopped
        assert monitor.problem is not None
        assert monitor.problem.startswith("leaf_hash_mismatch (leaf 5)")
        other_process = _monitor(writer, signer)
        await other_process.check()
        assert other_process.stopped
        assert await writer.append(call(300)) == 300  # refused calls are still journaled
        with pytest.raises(ResumeRefused, match="leaf_hash_mismatch"):
            await resume(writer.store, signer.verifier, operator="ops", reason="x", now=T0)
        tamper("UPDATE journal_leaves SET record = %s WHERE leaf_index = 5", original)
        _, cleared = await resume(
            writer.store, signer.verifier, operator="ops", reason="restored", now=T0
        )
        assert cleared == 1
        await monitor.check()
        assert not monitor.stopped
        async with writer.store.read() as connection:
            assert await open_alarm(connection) is None
    finally:
        await monitor.close()


async def test_the_monitor_notices_a_shrinking_unsigned_tail(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 100)
    await fill(writer, 30, start=100, batch=30)  # no checkpoint covers these yet
    monitor = _monitor(writer, signer)
    await monitor.check()  # what start() does, without the timer
    assert not monitor.stopped
    tamper("DELETE FROM journal_leaves WHERE leaf_index >= 120")
    await monitor.check()
    assert monitor.stopped
    assert monitor.problem == "truncated (leaf 120): the journal had 130 leaves, now 120"


async def test_the_monitor_checks_new_leaves_and_scrubs_old_ones(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 200)
    monitor = _monitor(writer, signer)
    await monitor.check()  # what start() does, without the timer
    await fill(writer, 50, start=200, batch=50)
    await monitor.check()
    assert not monitor.stopped
    forged = encode(_forged(210))
    tamper(
        "UPDATE journal_leaves SET record = %s, leaf_hash = %s WHERE leaf_index = 210",
        forged,
        merkle.leaf_hash(forged),
    )
    # The writer keeps the true hash in memory: the tile and checkpoint it writes next
    # disagree with the forged leaf, which the scrub of the old leaves then finds.
    await fill(writer, 60, start=250, batch=60)
    await monitor.check()
    assert monitor.stopped
    assert monitor.problem == (
        "tile_mismatch (leaf 0): the stored subtree of leaves [0, 256) differs from the leaves"
    )


async def test_the_monitor_refuses_to_start_on_a_log_that_no_longer_matches(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    tamper("UPDATE journal_nodes SET hash = %s WHERE level = 8 AND node_index = 0", bytes(32))
    monitor = _monitor(writer, signer)
    await monitor.start()
    await monitor.close()
    assert monitor.stopped
    assert monitor.problem is not None
    assert monitor.problem.startswith("checkpoint_root_mismatch")


async def test_the_monitor_notices_a_removed_checkpoint(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    monitor = _monitor(writer, signer)
    await monitor.check()  # what start() does, without the timer
    tamper("DELETE FROM journal_checkpoints WHERE tree_size = 300")
    await monitor.check()
    assert monitor.problem == "checkpoint_removed: checkpoint 300 disappeared"
    stop = JournalIntegrityStop(monitor.problem)
    assert (stop.status, stop.code) == (503, "930002")


# -- what the operator reads, and the boundaries (R-TR-2, R-TR-4, R-OPS-2) --------------

SIGNED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
#: ``str(problem)`` for each tampering: the code, the leaf, and a sentence naming the
#: checkpoint and the leaves concerned (step 1 of the operator procedure).
MESSAGES = {
    "edit": r"leaf_hash_mismatch \(leaf 5\): the record does not hash to its leaf",
    "edit_and_rehash": (
        rf"checkpoint_root_mismatch: the first 100 leaves no longer hash to the root signed at"
        rf" {SIGNED}: leaves before 100 were changed \(after checkpoint 0 if that one verified\)"
    ),
    "delete": r"gap \(leaf 8\): leaf 7 is missing \(next is 8\)",
    "truncate": (
        rf"truncated \(leaf 250\): checkpoint 300 \(signed {SIGNED}\) covers more leaves than"
        r" the 250 of the journal"
    ),
    "columns": r"columns_mismatch \(leaf 9\): indexed columns differ from the record",
    "unpurged_empty_record": r"record_missing \(leaf 2\): no record and not purged",
    "tile_changed": (
        r"tile_mismatch \(leaf 0\): the stored subtree of leaves \[0, 256\) differs from the"
        r" leaves"
    ),
    "tile_deleted": r"tile_mismatch \(leaf 0\): the stored subtree of leaves \[0, 256\) is missing",
    "tile_added": r"tiles_mismatch: 2 stored subtrees of height 8 for 300 leaves",
    "signed_root": r"checkpoint_signature: checkpoint 300: .+",
    "root_column": r"checkpoint_columns: checkpoint 200: columns differ from its note",
}


@pytest.mark.parametrize("case", list(MESSAGES))
async def test_each_problem_reads_as_the_operator_needs(
    case: str, writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    change, _, _ = CASES[case]
    await fill(writer, 300)
    await change(tamper, writer.store)
    result = await verify(writer.store, signer.verifier, chunk=128)
    assert result.problem is not None
    assert re.fullmatch(MESSAGES[case], str(result.problem)), str(result.problem)


async def test_a_record_that_is_not_bytes_or_not_canonical(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper, journal_url: str
) -> None:
    """A record or leaf hash of another type is reported, not a crash; a record that
    hashes to its leaf but is no canonical record is malformed (SQLite keeps TEXT as is,
    PostgreSQL stores the literal as bytes)."""
    await fill(writer, 100)
    sqlite = journal_url.startswith("sqlite")
    expected = "record_malformed" if sqlite else "leaf_hash_mismatch"
    for column in ("record", "leaf_hash"):
        original = await _record(writer.store, 4)
        tamper(f"UPDATE journal_leaves SET {column} = 'x' WHERE leaf_index = 4")  # noqa: S608
        result = await verify(writer.store, signer.verifier)
        assert result.problem is not None
        assert (result.problem.code, result.problem.index) == (expected, 4), result.problem
        if sqlite:
            assert str(result.problem) == (
                "record_malformed (leaf 4): a record or leaf hash is not bytes"
            )
        tamper(
            "UPDATE journal_leaves SET record = %s, leaf_hash = %s WHERE leaf_index = 4",
            original,
            merkle.leaf_hash(original),
        )
    assert (await verify(writer.store, signer.verifier)).ok
    junk = b"not a record"
    tamper(
        "UPDATE journal_leaves SET record = %s, leaf_hash = %s WHERE leaf_index = 4",
        junk,
        merkle.leaf_hash(junk),
    )
    result = await verify(writer.store, signer.verifier)
    assert result.problem is not None
    assert (result.problem.code, result.problem.index) == ("record_malformed", 4)
    assert result.problem.message != ""


async def test_a_checkpoint_after_every_leaf(
    journal_store: JournalStore, signer: NoteSigner, tamper: Tamper
) -> None:
    """Consecutive checkpoints one leaf apart, the first of size 1: each is consistent
    with the one before, each names it (RFC 9162 §2.1.4)."""
    writer = JournalWriter(journal_store, signer, checkpoint_every=1, checkpoint_interval=0)
    await writer.start()
    try:
        await fill(writer, 5, batch=1)
    finally:
        await writer.close()
    result = await verify(journal_store, signer.verifier, chunk=2)
    assert result.ok, result.problem
    assert (result.size, result.checkpoints) == (5, 5)
    tamper("DELETE FROM journal_leaves WHERE leaf_index = 4")
    cut = await verify(journal_store, signer.verifier, chunk=2)
    assert cut.problem is not None
    assert (cut.problem.code, cut.problem.index, cut.checkpoints) == ("truncated", 4, 4)


async def test_checkpoints_at_the_chunk_boundaries_are_verified_once(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    await fill(writer, 300)
    result = await verify(writer.store, signer.verifier, chunk=100)
    assert result.ok, result.problem
    assert (result.size, result.checkpoints) == (300, 3)


async def test_progress_is_reported_after_each_chunk(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    await fill(writer, 300)
    seen: list[tuple[int, int]] = []
    result = await verify(
        writer.store, signer.verifier, chunk=128, progress=lambda *step: seen.append(step)
    )
    assert result.ok, result.problem
    assert seen == [(128, 300), (256, 300), (300, 300), (300, 300)]
    assert result.latest is not None
    assert result.kept is None


async def _purge(tamper: Tamper, *indices: int) -> None:
    for index in indices:
        tamper(
            "UPDATE journal_leaves SET record = NULL, purged_at = %s WHERE leaf_index = %s",
            T0.replace(tzinfo=None),
            index,
        )


async def test_purges_justified_at_the_latest_checkpoint(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    """R-TR-4: a purged leaf verifies when the first checkpoint covering it was signed no
    later than its class's cutoff at the latest checkpoint (here the cutoff is the
    latest checkpoint's own time: leaf 250's first checkpoint is the latest, the limit)."""
    await fill(writer, 300)
    await _purge(tamper, 50, 60, 250)
    result = await verify(writer.store, signer.verifier, exchange_days=0, chunk=128)
    assert result.ok, result.problem
    assert (result.size, result.checkpoints, result.purged) == (300, 3, 3)
    strict = await verify(writer.store, signer.verifier, exchange_days=1, chunk=128)
    assert strict.problem is not None
    assert (strict.problem.code, strict.problem.index) == ("purge_unjustified", 50)
    assert re.fullmatch(
        r"purge_unjustified \(leaf 50\): the record was emptied before its retention"
        rf" \(exchange\) had passed at the latest signed checkpoint: checkpoint 100, the first"
        rf" to cover it, was signed {SIGNED}",
        str(strict.problem),
    ), str(strict.problem)


async def test_a_purge_with_no_checkpoint_at_all(
    journal_store: JournalStore, signer: NoteSigner, tamper: Tamper
) -> None:
    """No signed checkpoint: no cutoff, so no purge is justified, whatever its age."""
    writer = JournalWriter(journal_store, signer, checkpoint_every=1000, checkpoint_interval=0)
    await writer.start()
    try:
        await fill(writer, 10, batch=10)
    finally:
        await writer.close()
    assert (await verify(journal_store, signer.verifier)).ok
    await _purge(tamper, 3)
    result = await verify(journal_store, signer.verifier, exchange_days=0)
    assert result.latest is None
    assert str(result.problem) == (
        "purge_unjustified (leaf 3): the record was emptied but no signed checkpoint covers"
        " its leaf"
    )


def test_a_problem_reads_code_leaf_and_message() -> None:
    assert str(Problem("gap", "leaf 7 is missing", 0)) == "gap (leaf 0): leaf 7 is missing"
    assert str(Problem("tiles_mismatch", "2 stored")) == "tiles_mismatch: 2 stored"


# -- against the checkpoint kept outside the database (7. of ensu.audit.verify) ----------


async def _latest_note(journal: JournalStore) -> str:
    async with journal.read() as connection:
        latest = await store.latest_checkpoint(connection)
    assert latest is not None
    return latest.note


async def test_kept_checkpoint_unreadable(writer: JournalWriter, signer: NoteSigner) -> None:
    await fill(writer, 100)
    result = await verify(writer.store, signer.verifier, kept="not a note")
    assert result.problem is not None
    assert result.problem.code == "kept_checkpoint"
    assert result.problem.message.startswith("the checkpoint kept outside the database: ")
    assert result.kept is None


async def test_kept_checkpoint_of_the_current_size_and_earlier(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    await fill(writer, 100)
    kept = await _latest_note(writer.store)
    await fill(writer, 100, start=100)
    for note in (kept, await _latest_note(writer.store)):
        result = await verify(writer.store, signer.verifier, kept=note)
        assert result.ok, result.problem
    assert result.kept == 200


async def test_kept_checkpoint_deleted(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    kept = await _latest_note(writer.store)
    tamper("DELETE FROM journal_checkpoints WHERE tree_size = 300")
    result = await verify(writer.store, signer.verifier, kept=kept)
    assert re.fullmatch(
        rf"checkpoint_missing: checkpoint 300 \(signed {SIGNED}\), kept outside the database,"
        r" is no longer in the journal: it was deleted",
        str(result.problem),
    ), str(result.problem)
    assert result.kept == 300


async def test_kept_checkpoint_cut(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    kept = await _latest_note(writer.store)
    tamper("DELETE FROM journal_leaves WHERE leaf_index >= 299")
    result = await verify(writer.store, signer.verifier, kept=kept)
    assert re.fullmatch(
        r"rollback \(leaf 299\): the journal holds 299 leaves, the checkpoint kept outside the"
        rf" database signed 300 at {SIGNED}: its end was cut",
        str(result.problem),
    ), str(result.problem)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_checkpoints SET root_hash = %s WHERE tree_size = 300",
        "UPDATE journal_nodes SET hash = %s WHERE level = 8 AND node_index = 0",
    ],
    ids=["checkpoint-row", "tile"],
)
async def test_kept_checkpoint_replaced(
    statement: str, writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    """Either the stored checkpoint or the tree at its size no longer has the kept root."""
    await fill(writer, 300)
    kept = await _latest_note(writer.store)
    tamper(statement, bytes(32))
    result = await verify(writer.store, signer.verifier, kept=kept)
    assert re.fullmatch(
        rf"rollback: the tree of 300 leaves no longer has the root signed at {SIGNED} in the"
        r" checkpoint kept outside the database: the log was replaced",
        str(result.problem),
    ), str(result.problem)


async def test_kept_checkpoint_beyond_the_stored_tree(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    kept = await _latest_note(writer.store)
    tamper("DELETE FROM journal_nodes WHERE level = 8 AND node_index = 0")
    result = await verify(writer.store, signer.verifier, kept=kept)
    assert result.problem is not None
    assert result.problem.code == "rollback"
    assert result.problem.message.startswith("the tree at the kept checkpoint's size: ")
