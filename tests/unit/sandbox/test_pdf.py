"""The sandbox's PDFs (R-DATA-6): real PDFs that say they are fictive, with euros and
accents, byte-identical for the same plan, and clear errors when a font is missing.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pypdf
import pytest

from ensu.config import Settings
from ensu.documents.catalogue import CODES
from ensu.sandbox import pdf
from ensu.sandbox.errors import FontMissingError, RenderError
from ensu.sandbox.plan import DocumentPlan, Plan

SEED = 3
AMOUNT = re.compile(r"\d{1,3}(?:[\u00a0 ]\d{3})*,\d{2}[\u00a0 ]€")


@pytest.fixture(scope="module")
def fonts(tmp_path_factory: pytest.TempPathFactory) -> pdf.FontFiles:
    return pdf.prepare_fonts(
        regular=Settings().pdf_font, directory=tmp_path_factory.mktemp("fonts")
    )


@pytest.fixture(scope="module")
def one_per_code() -> dict[str, DocumentPlan]:
    source = Plan(seed=SEED, first_year=2024, last_year=2025)
    documents: dict[str, DocumentPlan] = {}
    for subject in source.subjects(4):
        for document in source.documents(subject):
            documents.setdefault(document.entry.code, document)
    return documents


def _read(data: bytes) -> pypdf.PdfReader:
    return pypdf.PdfReader(io.BytesIO(data))


def test_a_pdf_says_it_is_fictive_and_shows_the_document(
    fonts: pdf.FontFiles, one_per_code: dict[str, DocumentPlan]
) -> None:
    """R-DATA-6: fictive data only, said in the page and in the metadata."""
    document = one_per_code["TVA-CA3"]
    reader = _read(pdf.render(document, fonts=fonts, seed=SEED))
    text = reader.pages[0].extract_text()
    assert "Document fictif — bac à sable" in text
    assert "DOCUMENT FICTIF — BAC À SABLE" in text
    assert "Déclaration de TVA CA3" in text
    assert "Période" in text
    assert "Dénomination" in text
    assert document.idensua in text
    assert document.subject.siren is not None
    assert document.subject.siren in text
    assert document.periode_debut.strftime("%d/%m/%Y") in text
    assert len(AMOUNT.findall(text)) == 4
    metadata = reader.metadata
    assert metadata is not None
    assert metadata.title == "Déclaration de TVA CA3 — Document fictif — bac à sable"
    assert metadata.subject is not None
    assert "Document fictif — bac à sable" in metadata.subject


def test_the_same_plan_gives_byte_identical_pdfs(
    fonts: pdf.FontFiles, one_per_code: dict[str, DocumentPlan], tmp_path: Path
) -> None:
    """R-DATA-6: same seed, same bytes, even with the fonts prepared again elsewhere."""
    again = pdf.prepare_fonts(regular=Settings().pdf_font, directory=tmp_path)
    assert again.regular.read_bytes() == fonts.regular.read_bytes()
    for document in one_per_code.values():
        first = pdf.render(document, fonts=fonts, seed=SEED)
        assert pdf.render(document, fonts=again, seed=SEED) == first
    other_seed = pdf.render(one_per_code["AMR"], fonts=fonts, seed=SEED + 1)
    assert other_seed != pdf.render(one_per_code["AMR"], fonts=fonts, seed=SEED)


def test_every_code_renders_on_one_page(
    fonts: pdf.FontFiles, one_per_code: dict[str, DocumentPlan]
) -> None:
    assert set(one_per_code) == CODES
    for code, document in one_per_code.items():
        reader = _read(pdf.render(document, fonts=fonts, seed=SEED))
        assert len(reader.pages) == 1, code
        text = reader.pages[0].extract_text()
        assert code in text, code
        assert "€" in text, code
        assert document.idensua in text, code


def test_identifiers_appear_when_the_document_has_them(
    fonts: pdf.FontFiles, one_per_code: dict[str, DocumentPlan]
) -> None:
    document = dataclasses.replace(
        one_per_code["AMR"], docdistrib="DD000000000000000042", doccfs="CFS0000000000000042"
    )
    text = _read(pdf.render(document, fonts=fonts, seed=SEED)).pages[0].extract_text()
    assert "DOCDISTRIB" in text
    assert "DD000000000000000042" in text
    assert "DOCCFS" in text
    assert "CFS0000000000000042" in text
    bare = dataclasses.replace(document, docdistrib=None, doccfs=None)
    text = _read(pdf.render(bare, fonts=fonts, seed=SEED)).pages[0].extract_text()
    assert "DOCDISTRIB" not in text
    assert "DOCCFS" not in text


def test_a_missing_font_names_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(FontMissingError, match="apt-get install fonts-dejavu-core"):
        pdf.prepare_fonts(regular=tmp_path / "absent.ttf", directory=tmp_path)


def test_a_character_outside_the_alphabet_is_refused_not_dropped(
    fonts: pdf.FontFiles, one_per_code: dict[str, DocumentPlan]
) -> None:
    document = one_per_code["RIB-PRO"]
    strange = dataclasses.replace(document.subject, denomination="Société 東京")
    with pytest.raises(RenderError, match="東"):
        pdf.render(dataclasses.replace(document, subject=strange), fonts=fonts, seed=SEED)


def test_the_placeholder_is_a_stable_fictive_pdf() -> None:
    data = pdf.placeholder()
    assert data == pdf.placeholder()
    assert len(data) < 4096
    reader = _read(data)
    assert "Document fictif - bac à sable" in reader.pages[0].extract_text()
    assert reader.metadata is not None
    assert "Document fictif" in (reader.metadata.title or "")


def test_render_job_stores_the_blobs_it_names(
    fonts: pdf.FontFiles, one_per_code: dict[str, DocumentPlan], tmp_path: Path
) -> None:
    documents = (one_per_code["AMR"], one_per_code["RIB-PRO"])
    stored = pdf.render_job(pdf.RenderJob(documents, fonts, SEED, tmp_path))
    returned = pdf.render_job(pdf.RenderJob(documents, fonts, SEED, None))
    assert [r.sha256 for r in stored.rendered] == [r.sha256 for r in returned.rendered]
    for kept, sent in zip(stored.rendered, returned.rendered, strict=True):
        assert kept.content is None
        assert sent.content is not None
        name = kept.sha256.hex()
        assert (tmp_path / name[:2] / name[2:4] / name).read_bytes() == sent.content
        assert kept.taille == len(sent.content)
