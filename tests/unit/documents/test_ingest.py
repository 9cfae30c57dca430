"""Reading and checking an import manifest, row by row (R-DATA-1..4).

Each validation rule is proven on its own (a valid row with one field spoiled yields
exactly that problem), then together (a row with several problems lists them all), on
CSV and JSON Lines, with the file's line numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from ensu.documents import catalogue
from ensu.documents.identifiers import IDENSUA_PATTERN
from ensu.documents.ingest import (
    ManifestError,
    ManifestIndex,
    Record,
    RowCheck,
    check_record,
    read_records,
    survey,
)
from ensu.documents.storage import digest

PDF = b"%PDF-1.7\n% fictive test document\n%%EOF\n"
MAX_BYTES = 1024
IDENSUA_64 = "A" * 63 + "_"
IDENSUA_128 = "b-" * 64
HEADER = "siren,codeDocument,periodeDebut,periodeFin,dateEmission,fichier"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "doc.pdf").write_bytes(PDF)
    return tmp_path


def valid_values() -> dict[str, str]:
    return {
        "siren": "732829320",
        "denomination": "Fictive SA",
        "codeDocument": "TVA-CA3",
        "periodeDebut": "2025-01-01",
        "periodeFin": "2025-01-31",
        "dateEmission": "2025-02-20",
        "fichier": "doc.pdf",
    }


def check(folder: Path, values: dict[str, str], line: int = 2) -> RowCheck:
    return check_record(
        Record(line, values), codes=catalogue.CODES, base_dir=folder, max_bytes=MAX_BYTES
    )


# --- Reading CSV ------------------------------------------------------------------------


def test_csv_rows_carry_their_file_line_header_being_line_1(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"{HEADER}\n"
        "732829320,TVA-CA3,2025-01-01,2025-01-31,2025-02-20,a.pdf\n"
        "\n"
        '732829320,"TVA-\nCA3",2025-02-01,2025-02-28,2025-03-20,b.pdf\n'
        "732829320,AVIS-CFE,2025-01-01,2025-12-31,2025-11-15,c.pdf\n",
        encoding="utf-8",
    )
    records = list(read_records(manifest))
    assert [record.line for record in records] == [2, 4, 6]
    assert [record.values["fichier"] for record in records] == ["a.pdf", "b.pdf", "c.pdf"]
    assert records[1].values["codeDocument"] == "TVA-\nCA3"
    assert survey(manifest)[0] == 3


def test_csv_accepts_semicolons_a_bom_any_case_and_trims_cells(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(
        "\ufeffSIREN;CodeDocument;PERIODEDEBUT;periodefin;dateemission;Fichier;Denomination\n"
        " 732829320 ;TVA-CA3;2025-01-01;2025-01-31;2025-02-20;a.pdf;Société Fictive\n".encode()
    )
    (record,) = read_records(manifest)
    assert record.values == {
        "siren": "732829320",
        "codeDocument": "TVA-CA3",
        "periodeDebut": "2025-01-01",
        "periodeFin": "2025-01-31",
        "dateEmission": "2025-02-20",
        "fichier": "a.pdf",
        "denomination": "Société Fictive",
    }
    assert record.problems == ()


def test_csv_row_with_more_values_than_columns_is_a_problem(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{HEADER}\n732829320,TVA-CA3,2025-01-01,2025-01-31,2025-02-20,a.pdf,x\n")
    (record,) = read_records(manifest)
    assert record.problems == ("7 values for 6 columns",)


def test_empty_cells_are_absent_values(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{HEADER},idsp\n,TVA-CA3,2025-01-01,2025-01-31,2025-02-20,a.pdf,ABC123\n")
    (record,) = read_records(manifest)
    assert "siren" not in record.values
    assert record.values["idsp"] == "ABC123"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        (f"{HEADER},colour\n", "unknown column(s) colour"),
        (HEADER.replace("fichier", "fichiers") + "\n", "unknown column(s) fichiers"),
        (HEADER.replace(",fichier", "") + "\n", "missing column(s): fichier"),
        (HEADER.replace("siren,", "") + "\n", "missing column(s): siren or idsp"),
        (f"{HEADER},Siren\n", "given twice: siren"),
        (f"{HEADER},\n", "unknown column(s) (empty)"),
    ],
)
def test_unusable_csv_header(tmp_path: Path, content: str, message: str) -> None:
    """R-DATA-1..4: a header that cannot be mapped makes the whole manifest unusable."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(content)
    with pytest.raises(ManifestError, match=re.escape(message)):
        survey(manifest)


def test_unknown_extension_missing_file_and_bad_encoding_are_unusable(tmp_path: Path) -> None:
    wrong = tmp_path / "m.txt"
    wrong.write_text(f"{HEADER}\n")
    with pytest.raises(ManifestError, match=r"unknown manifest format '\.txt'"):
        survey(wrong)
    with pytest.raises(ManifestError, match="cannot be read"):
        survey(tmp_path / "absent.csv")
    latin1 = tmp_path / "m.csv"
    latin1.write_bytes(
        f"{HEADER},denomination\n".encode() + "1,2,3,4,5,6,Société\n".encode("cp1252")
    )
    with pytest.raises(ManifestError, match="not UTF-8"):
        survey(latin1)


# --- Reading JSON Lines -------------------------------------------------------------------


def test_jsonl_rows_carry_their_line_and_their_format_problems(tmp_path: Path) -> None:
    manifest = tmp_path / "m.ndjson"
    manifest.write_text(
        '{"siren": "732829320", "codeDocument": "TVA-CA3", "DOCDISTRIB": null}\n'
        "\n"
        "{not json\n"
        "[1, 2]\n"
        '{"SIREN": 732829320, "codedocument": "TVA-CA3", "colour": "blue", "x": [1]}\n',
        encoding="utf-8",
    )
    records = list(read_records(manifest))
    assert [record.line for record in records] == [1, 3, 4, 5]
    assert records[0] == Record(1, {"siren": "732829320", "codeDocument": "TVA-CA3"})
    assert records[1].problems[0].startswith("invalid JSON: Expecting property name")
    assert records[2].problems == ("a JSON object is expected",)
    assert records[3].values == {"codeDocument": "TVA-CA3"}
    assert records[3].problems == (
        "siren: a string is expected, not a number",
        "unknown key 'colour'",
        "unknown key 'x'",
    )


def test_jsonl_and_csv_give_the_same_values(tmp_path: Path) -> None:
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_text(f"{HEADER}\n732829320,TVA-CA3,2025-01-01,2025-01-31,2025-02-20,a.pdf\n")
    jsonl_manifest = tmp_path / "m.jsonl"
    jsonl_manifest.write_text(
        '{"siren": "732829320", "codeDocument": "TVA-CA3", "periodeDebut": "2025-01-01",'
        ' "periodeFin": "2025-01-31", "dateEmission": "2025-02-20", "fichier": "a.pdf"}\n'
    )
    (from_csv,) = read_records(csv_manifest)
    (from_jsonl,) = read_records(jsonl_manifest)
    assert from_csv.values == from_jsonl.values
    assert (from_csv.line, from_jsonl.line) == (2, 1)


# --- Checking a row ---------------------------------------------------------------------


def test_a_valid_row_becomes_a_document_with_its_digest_and_a_fresh_idensua(
    folder: Path,
) -> None:
    first, second = check(folder, valid_values()), check(folder, valid_values())
    assert first.problems == ()
    assert first.row is not None
    assert second.row is not None
    document = first.row.document
    assert (first.row.siren, first.row.idsp, first.row.denomination) == (
        "732829320",
        None,
        "Fictive SA",
    )
    assert (document.code, document.periode_debut, document.periode_fin) == (
        "TVA-CA3",
        dt.date(2025, 1, 1),
        dt.date(2025, 1, 31),
    )
    assert document.date_emission == dt.date(2025, 2, 20)
    assert (document.sha256, document.taille) == (digest(PDF), len(PDF))
    assert first.content == PDF
    assert IDENSUA_PATTERN.fullmatch(document.idensua)
    assert document.idensua != second.row.document.idensua  # generated, unguessable
    assert not first.row.explicit_idensua
    assert first.row.claimed_identifiers() == {}


def test_explicit_identifiers_idsp_and_absolute_path_are_kept(folder: Path) -> None:
    values = valid_values() | {
        "IDENSUA": IDENSUA_128,
        "DOCDISTRIB": "DIST-2025.001",
        "DOCCFS": "CFS_9",
        "fichier": str(folder / "doc.pdf"),
    }
    del values["siren"]
    values["idsp"] = "P2025AB12"
    result = check(folder.parent, values)  # the absolute path ignores the manifest's folder
    assert result.problems == ()
    assert result.row is not None
    assert result.row.idsp == "P2025AB12"
    assert result.row.claimed_identifiers() == {
        "IDENSUA": IDENSUA_128,
        "DOCDISTRIB": "DIST-2025.001",
        "DOCCFS": "CFS_9",
    }


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        # R-DATA-2: exactly one of SIREN (9 digits, Luhn) and IDSP
        ({"siren": "732829321"}, "siren '732829321' is not a SIREN"),
        ({"siren": "73282932"}, "siren '73282932' is not a SIREN"),
        ({"siren": "73282932a"}, "siren '73282932a' is not a SIREN"),
        ({"siren": None}, "siren or idsp is required (exactly one)"),
        ({"idsp": "P2025AB12"}, "siren and idsp are both given"),
        ({"siren": None, "idsp": "p2025"}, "idsp 'p2025' is not an IDSP"),
        # R-DATA-1: a code of the catalogue
        ({"codeDocument": "TVA-CA4"}, "codeDocument 'TVA-CA4' is not in the catalogue"),
        ({"codeDocument": None}, "codeDocument is missing"),
        # R-DATA-4: ISO dates, ordered period, issue date not before the period
        ({"periodeDebut": "2025-02-30"}, "periodeDebut '2025-02-30' is not a date"),
        ({"periodeFin": "31/01/2025"}, "periodeFin '31/01/2025' is not a date"),
        ({"dateEmission": "20250220"}, "dateEmission '20250220' is not a date"),
        ({"dateEmission": None}, "dateEmission is missing"),
        ({"periodeFin": "2024-12-31"}, "periodeDebut 2025-01-01 is after periodeFin 2024-12-31"),
        ({"dateEmission": "2024-12-31"}, "dateEmission 2024-12-31 is before periodeDebut"),
        # R-DATA-3: identifier formats
        ({"IDENSUA": "A" * 63}, "IDENSUA must be 64 or 128 base64url characters"),
        ({"IDENSUA": "A" * 63 + "+"}, "IDENSUA must be 64 or 128 base64url characters"),
        ({"IDENSUA": "A" * 96}, "IDENSUA must be 64 or 128 base64url characters"),
        ({"DOCDISTRIB": "DIST 1"}, "DOCDISTRIB 'DIST 1' must be 1 to 64 characters"),
        ({"DOCCFS": "-CFS"}, "DOCCFS '-CFS' must be 1 to 64 characters"),
        ({"DOCCFS": "C" * 65}, "DOCCFS 'CCCC"),
        ({"denomination": "D" * 201}, "denomination is longer than 200 characters"),
        # R-DATA-4: the file
        ({"fichier": None}, "fichier is missing"),
        ({"fichier": "absent.pdf"}, "fichier 'absent.pdf' cannot be read: No such file"),
        ({"fichier": "empty.pdf"}, "fichier 'empty.pdf' is empty"),
        ({"fichier": "text.pdf"}, "fichier 'text.pdf' is not a PDF"),
        ({"fichier": "large.pdf"}, f"fichier 'large.pdf' is larger than {MAX_BYTES} bytes"),
        ({"fichier": "folder.pdf"}, "fichier 'folder.pdf' is not a regular file"),
    ],
)
def test_each_rule_rejects_on_its_own(
    folder: Path, changes: dict[str, str | None], problem: str
) -> None:
    """R-DATA-1..4: a valid row with one field spoiled has exactly that one problem."""
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "text.pdf").write_bytes(b"Hello, not a PDF")
    (folder / "large.pdf").write_bytes(PDF + b"0" * MAX_BYTES)
    (folder / "folder.pdf").mkdir()
    values = valid_values()
    for name, value in changes.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    result = check(folder, values)
    assert result.row is None
    assert result.content is None
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith(problem)


def test_a_row_with_several_problems_lists_them_all(folder: Path) -> None:
    values = {
        "siren": "123456789",
        "codeDocument": "NOPE",
        "periodeDebut": "2025-03-01",
        "periodeFin": "2025-02-01",
        "dateEmission": "2025-01-01",
        "fichier": "absent.pdf",
        "DOCDISTRIB": "bad value",
    }
    record = Record(7, values, ("unknown key 'colour'",))
    result = check_record(record, codes=catalogue.CODES, base_dir=folder, max_bytes=MAX_BYTES)
    assert [problem.split(" ")[0] for problem in result.problems] == [
        "unknown",
        "siren",
        "codeDocument",
        "periodeDebut",
        "dateEmission",
        "DOCDISTRIB",
        "fichier",
    ]


def test_the_database_catalogue_decides_which_codes_are_known(folder: Path) -> None:
    values = valid_values() | {"codeDocument": "LOCAL-1"}
    result = check_record(
        Record(2, values),
        codes=frozenset({"LOCAL-1"}),
        base_dir=folder,
        max_bytes=MAX_BYTES,
    )
    assert result.problems == ()


def test_a_long_value_is_cut_in_messages(folder: Path) -> None:
    result = check(folder, valid_values() | {"codeDocument": "X" * 500})
    assert result.problems == (f"codeDocument '{'X' * 40}…' is not in the catalogue",)


# --- Duplicates within the manifest -------------------------------------------------------


def test_identifiers_and_documents_are_claimed_once_per_manifest(folder: Path) -> None:
    """R-DATA-3: an identifier, or a document, given twice is rejected on the later line."""
    index = ManifestIndex()
    first = check(folder, valid_values() | {"IDENSUA": IDENSUA_64, "DOCDISTRIB": "D1"}, line=2)
    assert index.claim(first) == []
    same_ids = check(
        folder,
        valid_values() | {"IDENSUA": IDENSUA_64, "DOCDISTRIB": "D1", "periodeFin": "2025-02-28"},
        line=3,
    )
    assert index.claim(same_ids) == [
        f"IDENSUA '{IDENSUA_64[:20]}…' is also used on line 2",
        "DOCDISTRIB 'D1' is also used on line 2",
    ]
    same_document = check(folder, valid_values() | {"DOCCFS": "D1"}, line=4)
    assert index.claim(same_document) == [
        "same document as line 2 (same subject, code, period and content)"
    ]
    other_subject = check(folder, valid_values() | {"siren": "552100554"}, line=5)
    assert index.claim(other_subject) == []


def test_a_rejected_row_still_claims_its_well_formed_identifiers(folder: Path) -> None:
    index = ManifestIndex()
    rejected = check(folder, valid_values() | {"DOCCFS": "C1", "codeDocument": "NOPE"}, line=2)
    assert rejected.row is None
    assert index.claim(rejected) == []
    later = check(folder, valid_values() | {"DOCCFS": "C1"}, line=9)
    assert index.claim(later) == ["DOCCFS 'C1' is also used on line 2"]
