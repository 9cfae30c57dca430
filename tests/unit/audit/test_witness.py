"""A journal that cannot be cut without notice (R-TR-2): a rollback of its end, a fake
purge and a deleted checkpoint are breaches; the kept checkpoint and the consumers'
witness (consistency proofs from the size they saw) detect what the database hides."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ensu.audit import client_witness, merkle, store
from ensu.audit.integrity import IntegrityMonitor
from ensu.audit.note import Checkpoint, NoteSigner
from ensu.audit.store import JournalStore
from ensu.audit.verify import verify
from ensu.audit.witness import (
    TLOG_SIZE,
    BeyondTheLog,
    CheckpointWitness,
    WitnessError,
    check_answer,
    read_kept,
    verify_consistency,
    witness_answer,
    write_kept,
)
from ensu.audit.writer import JournalWriter
from tests.unit.audit.conftest import T0, Tamper, call, fill

pytestmark = pytest.mark.anyio


@pytest.fixture
def kept_file(tmp_path: Path) -> Path:
    return tmp_path / "journal" / "checkpoint.note"


@pytest.fixture
async def kept_writer(
    journal_store: JournalStore, signer: NoteSigner, kept_file: Path
) -> AsyncIterator[JournalWriter]:
    """The app's writer: a checkpoint every 100 records, each kept outside the database."""
    witness = CheckpointWitness(journal_store, signer.verifier, kept_file)
    writer = JournalWriter(
        journal_store, signer, checkpoint_every=100, checkpoint_interval=0, witness=witness
    )
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()


def cut_the_end(tamper: Tamper, at: int) -> None:
    """What an intruder with the server stopped does: the last leaves, the checkpoints
    after them and the tiles beyond them, deleted together."""
    tamper("DELETE FROM journal_leaves WHERE leaf_index >= %s", at)
    tamper("DELETE FROM journal_checkpoints WHERE tree_size > %s", at)
    tamper("DELETE FROM journal_nodes WHERE ((node_index + 1) << level) > %s", at)


async def test_the_latest_checkpoint_is_kept_outside_the_database(
    kept_writer: JournalWriter, signer: NoteSigner, kept_file: Path
) -> None:
    await fill(kept_writer, 300)
    assert kept_writer.witness is not None
    await kept_writer.witness.flush()
    kept = signer.verifier.open(read_kept(kept_file) or "")
    assert (kept.size, kept.previous) == (300, 200)
    assert os.stat(kept_file).st_mode & 0o777 == 0o600
    result = await verify(kept_writer.store, signer.verifier, kept=read_kept(kept_file))
    assert result.ok, result.problem
    assert result.kept == 300


async def test_a_rollback_of_the_end_is_a_breach(
    kept_writer: JournalWriter, signer: NoteSigner, tamper: Tamper, kept_file: Path
) -> None:
    await fill(kept_writer, 300)
    assert kept_writer.witness is not None
    await kept_writer.witness.flush()
    cut_the_end(tamper, 200)
    alone = await verify(kept_writer.store, signer.verifier)
    assert alone.ok  # the database alone cannot tell: that is why the copy is kept
    result = await verify(kept_writer.store, signer.verifier, kept=read_kept(kept_file))
    assert result.problem is not None
    assert result.problem.code == "rollback"
    assert "holds 200 leaves" in result.problem.message
    monitor = IntegrityMonitor(
        kept_writer.store, signer.verifier, interval=3600, kept=lambda: read_kept(kept_file)
    )
    await monitor.check()  # what the app does at start, before it serves
    assert monitor.stopped
    assert monitor.problem is not None
    assert monitor.problem.startswith("rollback")


async def test_a_cut_journal_does_not_overwrite_the_kept_checkpoint(
    journal_store: JournalStore, signer: NoteSigner, tamper: Tamper, kept_file: Path
) -> None:
    witness = CheckpointWitness(journal_store, signer.verifier, kept_file)
    writer = JournalWriter(journal_store, signer, checkpoint_every=100, checkpoint_interval=0)
    await writer.start()
    await fill(writer, 300)
    await writer.close()
    async with journal_store.read() as connection:
        latest = await store.latest_checkpoint(connection)
    assert latest is not None
    assert await witness.keep(latest)
    cut_the_end(tamper, 200)
    restarted = JournalWriter(
        journal_store, signer, checkpoint_every=100, checkpoint_interval=0, witness=witness
    )
    restarted.witness = CheckpointWitness(journal_store, signer.verifier, kept_file)
    await restarted.start()
    await fill(restarted, 200, start=1000)  # the journal grows past the kept size again
    await restarted.close()
    assert signer.verifier.open(read_kept(kept_file) or "").size == 300


async def test_the_kept_file_only_grows(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "checkpoint.note"

    def note(size: int) -> str:
        return signer.sign(Checkpoint(signer.name, size, bytes(32), T0))

    assert write_kept(path, note(10))
    assert not write_kept(path, note(5))
    assert not write_kept(path, note(10))
    assert write_kept(path, note(11))
    assert read_kept(path) == note(11)
    assert read_kept(tmp_path / "none") is None


async def test_a_deleted_latest_checkpoint_is_found_by_the_kept_copy(
    kept_writer: JournalWriter, signer: NoteSigner, tamper: Tamper, kept_file: Path
) -> None:
    await fill(kept_writer, 300)
    assert kept_writer.witness is not None
    await kept_writer.witness.flush()
    tamper("DELETE FROM journal_checkpoints WHERE tree_size = 300")
    result = await verify(kept_writer.store, signer.verifier, kept=read_kept(kept_file))
    assert result.problem is not None
    assert result.problem.code == "checkpoint_missing"


@pytest.mark.parametrize("deleted", [100, 200])
async def test_a_deleted_checkpoint_breaks_the_chain(
    deleted: int, writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    tamper("DELETE FROM journal_checkpoints WHERE tree_size = %s", deleted)
    result = await verify(writer.store, signer.verifier)
    assert result.problem is not None
    assert result.problem.code == "checkpoint_chain"
    assert f"names checkpoint {deleted} as its predecessor" in result.problem.message


async def test_checkpoints_signed_before_the_chain_still_verify(
    journal_store: JournalStore, signer: NoteSigner
) -> None:
    """Checkpoints that name no predecessor (written before the chain) verify; the
    first chained one names the last of them."""
    writer = JournalWriter(journal_store, signer, checkpoint_every=100, checkpoint_interval=0)
    await writer.start()
    await fill(writer, 100)
    await writer.close()
    async with journal_store.read() as connection:
        latest = await store.latest_checkpoint(connection)
    assert latest is not None
    assert signer.verifier.open(latest.note).previous is None  # the first has none
    writer = JournalWriter(journal_store, signer, checkpoint_every=100, checkpoint_interval=0)
    await writer.start()
    await fill(writer, 100, start=100)
    await writer.close()
    result = await verify(journal_store, signer.verifier)
    assert result.ok, result.problem
    assert result.checkpoints == 2


async def test_an_emptied_recent_record_is_a_breach(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    tamper(
        "UPDATE journal_leaves SET record = NULL, purged_at = %s WHERE leaf_index = 250",
        (T0 + dt.timedelta(days=1)).replace(tzinfo=None),
    )
    result = await verify(writer.store, signer.verifier)
    assert result.problem is not None
    assert result.problem.code == "purge_unjustified"
    assert result.problem.index == 250
    # backdating its indexed time does not help: the checkpoint that covers it is signed
    tamper(
        "UPDATE journal_leaves SET at = %s WHERE leaf_index = 250",
        (T0 - dt.timedelta(days=900)).replace(tzinfo=None),
    )
    again = await verify(writer.store, signer.verifier)
    assert again.problem is not None
    assert again.problem.code == "purge_unjustified"


async def test_an_emptied_unsigned_record_is_a_breach(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    await fill(writer, 10, start=300, batch=10)  # no checkpoint covers these yet
    tamper(
        "UPDATE journal_leaves SET record = NULL, purged_at = %s WHERE leaf_index = 305",
        T0.replace(tzinfo=None),
    )
    result = await verify(writer.store, signer.verifier)
    assert result.problem is not None
    assert (result.problem.code, result.problem.index) == ("purge_unjustified", 305)


# -- the consumers' witness ---------------------------------------------------------------


def _as_json(answer: Any) -> dict[str, Any]:
    payload: dict[str, Any] = answer.consistency_json()
    return payload


async def test_a_client_that_kept_a_checkpoint_follows_the_journal_and_sees_a_cut(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    assert await witness_answer(writer.store, signer.verifier) is None  # nothing signed yet
    await fill(writer, 100)
    first = await witness_answer(writer.store, signer.verifier)
    assert first is not None
    kept = check_answer({"pointControle": first.checkpoint_json()}, signer.verifier, None)
    copied = client_witness.witness(
        {"pointControle": first.checkpoint_json()}, signer.verifier.vkey, None
    )
    assert (copied.size, copied.root) == (kept.size, kept.root) == (100, first.checkpoint.root)
    await fill(writer, 200, start=100)
    later = await witness_answer(writer.store, signer.verifier, since=kept.size)
    assert later is not None
    assert later.proof  # 100 -> 300 needs one
    kept = check_answer(_as_json(later), signer.verifier, kept)
    copied = client_witness.witness(_as_json(later), signer.verifier.vkey, copied)
    assert kept.size == copied.size == 300

    cut_the_end(tamper, 200)  # and the journal goes on from there, re-signed
    await writer.close()
    regrown = JournalWriter(writer.store, signer, checkpoint_every=100, checkpoint_interval=0)
    await regrown.start()
    await fill(regrown, 150, start=5000)
    await regrown.checkpoint()
    await regrown.close()
    answer = await witness_answer(writer.store, signer.verifier, since=kept.size)
    assert answer is not None
    assert answer.checkpoint.size == 350
    with pytest.raises(WitnessError, match="does not extend"):
        check_answer(_as_json(answer), signer.verifier, kept)
    with pytest.raises(client_witness.Rollback, match="does not extend"):
        client_witness.witness(_as_json(answer), signer.verifier.vkey, copied)


async def test_a_client_sees_a_smaller_journal(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper
) -> None:
    await fill(writer, 300)
    answer = await witness_answer(writer.store, signer.verifier)
    assert answer is not None
    kept = check_answer({"pointControle": answer.checkpoint_json()}, signer.verifier, None)
    cut_the_end(tamper, 200)
    with pytest.raises(BeyondTheLog):
        await witness_answer(writer.store, signer.verifier, since=kept.size)
    smaller = await witness_answer(writer.store, signer.verifier)
    assert smaller is not None
    forged = {"depuis": kept.size, "preuve": [], "pointControle": smaller.checkpoint_json()}
    with pytest.raises(WitnessError, match="rollback"):
        check_answer(forged, signer.verifier, kept)
    copied = client_witness.Kept(kept.size, kept.root, "")
    with pytest.raises(client_witness.Rollback, match="200 leaves signed, 300"):
        client_witness.witness(forged, signer.verifier.vkey, copied)


async def test_a_forged_answer_is_refused(writer: JournalWriter, signer: NoteSigner) -> None:
    await fill(writer, 100)
    answer = await witness_answer(writer.store, signer.verifier)
    assert answer is not None
    payload = {"pointControle": {**answer.checkpoint_json(), "taille": 5}}
    with pytest.raises(WitnessError, match="fields differ"):
        check_answer(payload, signer.verifier, None)
    with pytest.raises(client_witness.Rollback, match="fields differ"):
        client_witness.witness(payload, signer.verifier.vkey, None)
    note = answer.note.replace("\n100\n", "\n101\n")
    payload = {"pointControle": {**answer.checkpoint_json(), "note": note}}
    with pytest.raises(WitnessError, match="signature"):
        check_answer(payload, signer.verifier, None)
    with pytest.raises(client_witness.Rollback, match="signature"):
        client_witness.witness(payload, signer.verifier.vkey, None)


def test_the_two_consistency_checks_agree_with_the_proofs() -> None:
    """The package's and the standalone copy's RFC 9162 §2.1.4.2, on every size pair of
    small trees and random tampering."""
    rng = random.Random(9162)
    hashes = [merkle.leaf_hash(bytes([n])) for n in range(40)]
    oracle = merkle.memory_subtree(hashes)
    for new in range(1, 41):
        new_root = merkle.root_of(hashes[:new])
        for old in range(0, new + 1):
            old_root = merkle.root_of(hashes[:old])
            proof = [] if old in (0, new) else merkle.consistency_proof(old, new, oracle)
            assert verify_consistency(old, old_root, new, new_root, proof)
            assert client_witness.verify_consistency(old, old_root, new, new_root, proof)
            if proof:
                bad = list(proof)
                bad[rng.randrange(len(bad))] = bytes(32)
                assert not verify_consistency(old, old_root, new, new_root, bad)
                assert not client_witness.verify_consistency(old, old_root, new, new_root, bad)
            assert not verify_consistency(new, new_root, old, old_root, proof) or old == new
            assert not client_witness.verify_consistency(new, new_root, old, old_root, proof) or (
                old == new
            )


def test_the_answer_speaks_the_contract(signer: NoteSigner) -> None:
    checkpoint = Checkpoint(signer.name, 7, bytes(range(32)), T0, previous=3)
    note = signer.sign(checkpoint)
    assert signer.verifier.open(note) == checkpoint
    answer = dataclasses.replace(_answer_of(checkpoint, note, signer), since=3, proof=(bytes(32),))
    assert answer.consistency_json() == {
        "depuis": 3,
        "taille": 7,
        "preuve": [base64.b64encode(bytes(32)).decode()],
        "pointControle": {
            "origine": signer.name,
            "taille": 7,
            "racine": base64.b64encode(bytes(range(32))).decode(),
            "horodatage": "2026-03-02T09:30:00.000Z",
            "precedent": 3,
            "note": note,
            "cle": signer.verifier.vkey,
        },
    }


def _answer_of(checkpoint: Checkpoint, note: str, signer: NoteSigner) -> Any:
    from ensu.audit.witness import WitnessAnswer  # noqa: PLC0415

    return WitnessAnswer(checkpoint, note, signer.verifier.vkey)


def test_a_note_naming_a_later_predecessor_does_not_parse(signer: NoteSigner) -> None:
    from ensu.audit.note import NoteError  # noqa: PLC0415

    body = Checkpoint(signer.name, 7, bytes(32), T0).body() + "previous 7\n"
    with pytest.raises(NoteError, match="previous"):
        Checkpoint.parse(body)
    body = Checkpoint(signer.name, 7, bytes(32), T0).body() + "previous 07\n"
    with pytest.raises(NoteError, match="previous"):
        Checkpoint.parse(body)
    assert call(1).at == T0 + dt.timedelta(seconds=1)


# -- the external witness ------------------------------------------------------------------


class TlogWitness:
    """A C2SP tlog-witness ``add-checkpoint`` endpoint, in memory: it holds the latest
    checkpoint it accepted and checks each new one's proof from it."""

    def __init__(self, signer: NoteSigner) -> None:
        self.verifier = signer.verifier
        self.size, self.root = 0, merkle.EMPTY_ROOT
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        self.requests.append(body)
        head, _, note = body.partition("\n\n")
        lines = head.split("\n")
        old = int(lines[0].removeprefix("old "))
        proof = [base64.b64decode(line) for line in lines[1:]]
        if old != self.size:
            return httpx.Response(409, text=f"{self.size}\n", headers={"content-type": TLOG_SIZE})
        checkpoint = self.verifier.open(note)
        if not verify_consistency(old, self.root, checkpoint.size, checkpoint.root, proof):
            return httpx.Response(422)
        self.size, self.root = checkpoint.size, checkpoint.root
        return httpx.Response(200, text="\u2014 witness.test AAAA\n")


async def _latest(journal: JournalStore) -> store.StoredCheckpoint:
    async with journal.read() as connection:
        latest = await store.latest_checkpoint(connection)
    assert latest is not None
    return latest


async def test_each_checkpoint_is_pushed_to_the_external_witness_with_its_proof(
    writer: JournalWriter, signer: NoteSigner, tamper: Tamper, kept_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    witness = TlogWitness(signer)

    def pusher() -> CheckpointWitness:  # a process of its own: it knows nothing yet
        return CheckpointWitness(
            writer.store,
            signer.verifier,
            kept_file,
            witness_url="https://witness.test/add-checkpoint",
            transport=httpx.MockTransport(witness.handle),
        )

    await fill(writer, 100)
    await pusher().push(await _latest(writer.store))
    assert (witness.size, witness.requests[0].split("\n")[0]) == (100, "old 0")
    await fill(writer, 200, start=100)
    await pusher().push(await _latest(writer.store))  # 409 names 100: the proof from there
    assert witness.size == 300
    assert witness.requests[-1].startswith("old 100\n")
    cut_the_end(tamper, 250)
    await writer.checkpoint()  # the cut journal signs 250
    with caplog.at_level(logging.CRITICAL, logger="ensu.audit"):
        await pusher().push(await _latest(writer.store))
    assert witness.size == 300
    assert "the external witness holds a tree of 300 leaves" in caplog.text


async def test_an_unreachable_witness_does_not_fail_the_journal(
    writer: JournalWriter, signer: NoteSigner, kept_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no answer", request=request)

    pusher = CheckpointWitness(
        writer.store,
        signer.verifier,
        kept_file,
        witness_url="https://witness.test/add-checkpoint",
        transport=httpx.MockTransport(down),
    )
    await fill(writer, 100)
    with caplog.at_level(logging.WARNING, logger="ensu.audit"):
        pusher.offer(await _latest(writer.store))
        await pusher.flush()
    assert "could not push checkpoint 100" in caplog.text
    assert signer.verifier.open(read_kept(kept_file) or "").size == 100  # kept all the same
