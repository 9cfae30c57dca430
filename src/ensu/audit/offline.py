"""Offline check of an investigation bundle (R-TR-3).

Uses only the Python standard library and ``cryptography``: this module and the two it
imports (:mod:`ensu.audit.merkle`, :mod:`ensu.audit.note`) import nothing else, so an
investigator can check a bundle without the product's database, network or settings::

    ensu journal check-bundle bundle.json --key producer.vkey
    python -m ensu.audit.offline bundle.json [producer.vkey]

The check: the checkpoint's Ed25519 signature (with the key given, else the bundle's
own, which then only proves internal consistency: compare its key hash with the one the
producer published); for each entry, its record hashes to its leaf hash
(``SHA-256(0x00 || record)``), its decoded ``content`` is that record, it belongs to the
bundle's query (téléservice, period, case reference if any), and its RFC 9162 §2.1.3
inclusion proof leads to the signed root.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ensu.audit import merkle
from ensu.audit.note import Checkpoint, NoteError, NoteVerifier

FORMAT = "ensu-journal-bundle/1"


@dataclass(slots=True)
class BundleReport:
    """What the check found: the checkpoint, how many entries verified, the problems."""

    checkpoint: Checkpoint | None = None
    key_id: str | None = None
    trusted_key: bool = False
    verified: int = 0
    purged: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.checkpoint is not None


def check_bundle(bundle: Mapping[str, Any], trusted_vkey: str | None = None) -> BundleReport:
    """Check ``bundle`` (parsed JSON); ``trusted_vkey``: the producer's published key."""
    report = BundleReport(trusted_key=trusted_vkey is not None)
    if bundle.get("format") != FORMAT:
        report.problems.append(f"not a {FORMAT} bundle")
        return report
    try:
        verifier = NoteVerifier.from_vkey(trusted_vkey or bundle["key"]["vkey"])
        report.key_id = verifier.key_id
        report.checkpoint = verifier.open(bundle["checkpoint"])
    except (NoteError, KeyError, TypeError) as exc:
        report.problems.append(f"checkpoint: {exc}")
        return report
    query = bundle.get("query", {})
    for position, entry in enumerate(bundle.get("entries", [])):
        problem = _check_entry(entry, report.checkpoint, query)
        if problem is not None:
            report.problems.append(f"entry {position}: {problem}")
        elif entry.get("record") is None:
            report.purged += 1
        else:
            report.verified += 1
    return report


def _check_entry(
    entry: Mapping[str, Any], checkpoint: Checkpoint, query: Mapping[str, Any]
) -> str | None:
    try:
        index = int(entry["index"])
        leaf = base64.b64decode(entry["leaf_hash"], validate=True)
        proof = [base64.b64decode(node, validate=True) for node in entry["proof"]]
        record = entry.get("record")
        data = None if record is None else base64.b64decode(record, validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return f"malformed ({exc})"
    if data is not None:
        if merkle.leaf_hash(data) != leaf:
            return f"leaf {index}: the record does not hash to its leaf hash"
        content = json.loads(data)
        if entry.get("content") != content:
            return f"leaf {index}: the readable content differs from the record"
        outside = _outside_query(content, query)
        if outside:
            return f"leaf {index}: {outside}"
    if not merkle.verify_inclusion(
        leaf=leaf, index=index, size=checkpoint.size, path=proof, root=checkpoint.root
    ):
        return f"leaf {index}: the inclusion proof does not lead to the signed root"
    return None


def _outside_query(content: Mapping[str, Any], query: Mapping[str, Any]) -> str | None:
    teleservice = content.get("id_teleservice")
    if content.get("kind") == "event":
        teleservice = (content.get("details") or {}).get("id_teleservice")
    if teleservice != query.get("id_teleservice"):
        return "another téléservice than the bundle's"
    at = str(content.get("at", ""))  # the journal's fixed format sorts as text
    if not str(query.get("from", "")) <= at < str(query.get("to", "")):
        return "outside the bundle's period"
    if "reference" in query and content.get("reference_demande") != query["reference"]:
        return "another case reference than the bundle's"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m ensu.audit.offline BUNDLE [VKEY_FILE]``: 0 if the bundle verifies."""
    arguments = sys.argv[1:] if argv is None else argv
    if not 1 <= len(arguments) <= 2:
        print("usage: python -m ensu.audit.offline BUNDLE.json [PRODUCER.vkey]", file=sys.stderr)
        return 2
    with open(arguments[0], encoding="utf-8") as file:
        bundle = json.load(file)
    vkey = None
    if len(arguments) == 2:
        with open(arguments[1], encoding="utf-8") as file:
            vkey = file.read().strip()
    report = check_bundle(bundle, vkey)
    for problem in report.problems:
        print(f"FAIL {problem}")
    if report.ok:
        assert report.checkpoint is not None
        print(
            f"OK {report.verified} records and {report.purged} purged leaves proven in the "
            f"tree of {report.checkpoint.size} leaves signed by key {report.key_id}"
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
