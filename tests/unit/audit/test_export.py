"""The investigation bundle (R-TR-3): a téléservice's records of a period with inclusion
proofs and a signed checkpoint, checked offline; any change to it is refused."""

from __future__ import annotations

import ast
import asyncio
import base64
import copy
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import ensu.audit.merkle
import ensu.audit.note
import ensu.audit.offline
from ensu.audit import retention
from ensu.audit.export import export_bundle
from ensu.audit.note import NoteSigner
from ensu.audit.offline import check_bundle, main
from ensu.audit.records import EventRecord
from ensu.audit.store import JournalStore
from ensu.audit.writer import JournalWriter
from tests.unit.audit.conftest import T0, call

pytestmark = pytest.mark.anyio

DAY = dt.timedelta(days=1)


async def _bundle(writer: JournalWriter, signer: NoteSigner) -> dict[str, Any]:
    await asyncio.gather(  # about 12 days of calls, one an hour, two in three for TS-A
        *(
            writer.append(
                call(n, teleservice="TS-A" if n % 3 else "TS-B", at=T0 + n * dt.timedelta(hours=1))
            )
            for n in range(300)
        )
    )
    await writer.append(
        EventRecord(
            at=T0 + 2 * DAY,
            tag="consumers:teleservice:suspended",
            actor="cli:ops",
            details={"id_teleservice": "TS-A", "reason": "homologation échue"},
        )
    )
    return await export_bundle(
        writer.store,
        signer,
        id_teleservice="TS-A",
        start=T0 + DAY,
        end=T0 + 4 * DAY,
        now=T0 + 30 * DAY,
    )


async def test_a_bundle_holds_the_period_and_verifies_offline(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    bundle = await _bundle(writer, signer)
    contents = [entry["content"] for entry in bundle["entries"]]
    calls = [c for c in contents if c["kind"] == "call"]
    assert len(calls) == 48  # 72 hours, two calls in three for TS-A
    assert {c["id_teleservice"] for c in calls} == {"TS-A"}
    assert all("2026-03-03T09:30" <= c["at"] < "2026-03-06T09:30" for c in contents)
    assert [c["tag"] for c in contents if c["kind"] == "event"] == [
        "consumers:teleservice:suspended"
    ]
    report = check_bundle(bundle, signer.verifier.vkey)
    assert report.ok, report.problems
    assert report.verified == 49
    assert report.checkpoint is not None
    assert report.checkpoint.size == 301
    assert report.trusted_key


def _flip(text: str) -> str:
    data = bytearray(base64.b64decode(text))
    data[0] ^= 1
    return base64.b64encode(bytes(data)).decode()


def _change_content(bundle: dict[str, Any]) -> None:
    bundle["entries"][0]["content"]["ip"] = "203.0.113.1"


def _change_record(bundle: dict[str, Any]) -> None:
    entry = bundle["entries"][0]
    entry["record"] = base64.b64encode(
        base64.b64decode(entry["record"]).replace(b"192.0.2.10", b"192.0.2.11")
    ).decode()


def _change_proof(bundle: dict[str, Any]) -> None:
    bundle["entries"][3]["proof"][2] = _flip(bundle["entries"][3]["proof"][2])


def _change_index(bundle: dict[str, Any]) -> None:
    bundle["entries"][1]["index"] += 1


def _change_checkpoint(bundle: dict[str, Any]) -> None:
    bundle["checkpoint"] = bundle["checkpoint"].replace("\n301\n", "\n302\n")


def _widen_the_query(bundle: dict[str, Any]) -> None:
    bundle["query"]["to"] = "2026-03-04T00:00:00.000Z"


def _change_teleservice(bundle: dict[str, Any]) -> None:
    bundle["query"]["id_teleservice"] = "TS-B"


@pytest.fixture(scope="module")
def sqlite_bundle(
    tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey
) -> tuple[dict[str, Any], str]:
    """One bundle (on SQLite) for the tests that change it, and its verifier key."""
    signer = NoteSigner("journal.test/ensu-journal", signing_key)
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bundle') / 'journal.db'}"

    async def build() -> dict[str, Any]:
        journal = JournalStore(url)
        writer = JournalWriter(journal, signer, checkpoint_interval=0)
        await writer.start()
        try:
            return await _bundle(writer, signer)
        finally:
            await writer.close()
            await journal.dispose()

    return asyncio.run(build()), signer.verifier.vkey


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_change_content, "readable content differs"),
        (_change_record, "does not hash to its leaf hash"),
        (_change_proof, "does not lead to the signed root"),
        (_change_index, "does not lead to the signed root"),
        (_change_checkpoint, "signature does not verify"),
        (_widen_the_query, "outside the bundle's period"),
        (_change_teleservice, "another téléservice"),
    ],
)
def test_any_change_to_a_bundle_is_refused(
    sqlite_bundle: tuple[dict[str, Any], str], change: Any, message: str
) -> None:
    bundle, vkey = sqlite_bundle
    assert check_bundle(bundle, vkey).ok
    changed = copy.deepcopy(bundle)
    change(changed)
    report = check_bundle(json.loads(json.dumps(changed)), vkey)
    assert not report.ok
    assert message in report.problems[0]


async def test_a_bundle_signed_by_another_key_than_the_published_one_is_refused(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    bundle = await _bundle(writer, signer)
    published = NoteSigner(signer.name, Ed25519PrivateKey.generate()).verifier.vkey
    report = check_bundle(bundle, published)
    assert report.problems == [
        f"checkpoint: the note has no signature by {signer.name} ({published.split('+')[1]})"
    ]
    own = check_bundle(bundle)
    assert own.ok
    assert not own.trusted_key


async def test_purged_records_are_still_proven_by_their_leaf_hash(
    writer: JournalWriter, signer: NoteSigner
) -> None:
    writer.clock = lambda: T0 + 13 * DAY  # the checkpoints of the calls, signed after them
    await _bundle(writer, signer)
    writer.clock = lambda: T0 + 400 * DAY  # the journal ran on: a purge needs a checkpoint
    await writer.append(call(400, at=T0 + 400 * DAY))  # signed after the retention passed
    await writer.checkpoint()
    await retention.purge(writer.store, now=T0 + 400 * DAY, exchange_days=365)
    bundle = await export_bundle(
        writer.store, signer, id_teleservice="TS-A", start=T0, end=T0 + DAY, now=T0 + 400 * DAY
    )
    assert bundle["entries"]
    assert all(entry["record"] is None for entry in bundle["entries"])
    report = check_bundle(bundle, signer.verifier.vkey)
    assert report.ok, report.problems
    assert (report.verified, report.purged) == (0, len(bundle["entries"]))


async def test_the_offline_checker_runs_as_a_module(
    writer: JournalWriter, signer: NoteSigner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(await _bundle(writer, signer)))
    vkey = tmp_path / "producer.vkey"
    vkey.write_text(signer.verifier.vkey + "\n")
    assert main([str(path), str(vkey)]) == 0
    assert capsys.readouterr().out.startswith("OK 49 records and 0 purged leaves proven")
    bundle = json.loads(path.read_text())
    _change_record(bundle)
    path.write_text(json.dumps(bundle))
    assert main([str(path)]) == 1
    assert "FAIL entry 0" in capsys.readouterr().out
    assert main([]) == 2


@pytest.mark.parametrize("module", [ensu.audit.offline, ensu.audit.note, ensu.audit.merkle])
def test_the_offline_check_needs_only_the_standard_library_and_cryptography(
    module: Any,
) -> None:
    """R-TR-3: an investigator checks a bundle without the product's dependencies."""
    allowed = {"ensu.audit.merkle", "ensu.audit.note", "ensu.audit"}
    tree = ast.parse(Path(module.__file__).read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert (
                top in sys.stdlib_module_names
                or top == "cryptography"
                or name in allowed
                or name == "__future__"
            ), f"{module.__name__} imports {name}"
