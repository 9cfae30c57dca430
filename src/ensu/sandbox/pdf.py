"""Fictive documents rendered as PDF with fpdf2 and a TrueType font (R-DATA-6, R-DATA-4).

Every page says, in its text and in its metadata, that it is a fictive sandbox document.
The same plan gives the same bytes: the creation date is derived from the issue date, the
file identifier fpdf2 writes is an MD5 of the content and that date, and nothing else in
fpdf2's output (without encryption, signatures or PDF/A XMP) depends on the clock or on
randomness.

Speed (measured on the reference 2-core machine, one core): parsing the whole DejaVu
fonts for every document and letting fpdf2 subset them cost about 130 ms per PDF. The font
is therefore cut once per run down to :data:`ALPHABET` (:func:`prepare_fonts`), fpdf2's
per-document subset skips recomputing glyph bounding boxes, headings are a faux bold of
the one font (a second font costs as much again), and ``cell`` is preferred to
``multi_cell``: about 14 ms per PDF.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from fontTools import subset as ftsubset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import TextMode
from fpdf.fonts import TTFFont

from ensu.documents.models import Family
from ensu.documents.storage import FilesystemBlobStore, digest
from ensu.sandbox import content
from ensu.sandbox.errors import FontMissingError, RenderError
from ensu.sandbox.plan import DocumentPlan, SubjectPlan

FICTIVE = "Document fictif — bac à sable"
#: What the documents may print: ASCII, Latin-1 (accents, ×, °, «»), œ, €, typographic marks.
ALPHABET = (
    "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0xA0, 0x100))) + "ŒœŸ€–—‘’“”…•"
)
FAMILY_LABELS = {
    Family.DECLARATIVES: "déclaratives",
    Family.BANCAIRES: "bancaires",
    Family.CREANCES: "créances",
    Family.PAIEMENTS: "paiements",
    Family.REMBOURSEMENTS: "remboursements",
    Family.OBLIGATIONS_FISCALES: "obligations fiscales",
    Family.HABILITATIONS: "habilitations",
}
FONT = "DejaVu"
FOOTER = (
    f"{FICTIVE}. Ce document a été généré automatiquement pour les essais de l'API ENSU Documents.",
    "Il ne concerne aucune entreprise réelle, ne contient aucune donnée réelle et n'a aucune "
    "valeur juridique ou fiscale.",
    "Montants en euros (€).",
)
GREY, DARK, RED = (110, 110, 110), (25, 25, 25), (160, 28, 28)
INSTALL_HINT = "apt-get install fonts-dejavu-core"
MIN_FONT_SIZE = 7.5
#: Outline stroke of the faux bold per point of font size. fpdf2 2.8 writes the line width
#: of text outlines in points without converting it from millimetres, hence points here.
BOLD_STROKE = 0.045


@dataclass(frozen=True, slots=True)
class FontFiles:
    """The TrueType font, already cut down to :data:`ALPHABET`."""

    regular: Path


def prepare_fonts(*, regular: Path, directory: Path) -> FontFiles:
    """Subset ``regular`` into ``directory``; a missing font is a clear error."""
    if not regular.is_file():
        raise FontMissingError(
            f"font file {regular} not found: install it ({INSTALL_HINT} on Debian) "
            "or point ENSU_PDF_FONT at a TrueType font"
        )
    fonts = FontFiles(regular=directory / "regular.ttf")
    _subset(regular, fonts.regular)
    return fonts


def _subset(source: Path, target: Path) -> None:
    # recalcTimestamp=False keeps the font's own date: the same bytes on every run.
    with TTFont(source, recalcTimestamp=False) as font:
        _cut(font).save(target)


def _cut(font: TTFont) -> TTFont:
    options = ftsubset.Options(
        notdef_outline=True, recommended_glyphs=True, hinting=False, glyph_names=True
    )
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "MATH", "FFTM", "hdmx", "kern", "gasp"]
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(text=ALPHABET)
    subsetter.subset(font)
    return font


def render(document: DocumentPlan, *, fonts: FontFiles, seed: int) -> bytes:
    """The PDF of ``document``: the same plan, fonts and seed give the same bytes."""
    pdf = _new_pdf(document, fonts)
    try:
        pdf.add_page()
        _watermark(pdf)
        _banner(pdf, seed)
        _title(pdf, document)
        _section(pdf, "Usager professionnel", _subject_rows(document.subject))
        _section(pdf, "Document", _document_rows(document))
        _section(pdf, "Détail", content.lines(document), numbers_right=True)
        _footer(pdf)
        _check_glyphs(pdf, document)
        return bytes(pdf.output())
    finally:
        for font in _truetype(pdf):
            font.ttfont.close()  # fpdf2 reads fonts lazily and leaves the files open


def _new_pdf(document: DocumentPlan, fonts: FontFiles) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(auto=True, margin=34)
    # A fixed date: fpdf2 would otherwise write the current time (and hash it into /ID).
    pdf.set_creation_date(dt.datetime.combine(document.date_emission, dt.time(9), dt.UTC))
    pdf.set_title(f"{document.entry.libelle} — {FICTIVE}")
    pdf.set_subject(f"{FICTIVE} ({document.entry.code}, ENSU Documents)")
    pdf.set_author("ENSU Documents — bac à sable")
    pdf.set_keywords("document fictif, bac à sable, ENSU Documents")
    pdf.set_creator("ensu sandbox generate")
    pdf.set_producer("ENSU Documents")
    pdf.set_lang("fr-FR")
    pdf.add_font(FONT, "", fonts.regular)
    for font in _truetype(pdf):
        # The subset keeps valid (larger) bounding boxes; recomputing them re-expands
        # every glyph and costs a third of the render time.
        font.ttfont.recalcBBoxes = False
    return pdf


def _truetype(pdf: FPDF) -> list[TTFFont]:
    return [font for font in pdf.fonts.values() if isinstance(font, TTFFont)]


def _style(pdf: FPDF, size: float, color: tuple[int, int, int], *, bold: bool = False) -> None:
    """Size and colour; bold is drawn by stroking the glyphs' outline (fill and stroke).

    A faux bold: embedding a second font costs as much again per PDF (R-DATA-6 volumes).
    """
    pdf.set_font(FONT, "", size)
    pdf.set_text_color(*color)
    pdf.text_mode = TextMode.FILL_STROKE if bold else TextMode.FILL
    if bold:
        pdf.set_draw_color(*color)
        pdf.set_line_width(size * BOLD_STROKE)


def _watermark(pdf: FPDF) -> None:
    _style(pdf, 90, (238, 226, 226), bold=True)
    with pdf.rotation(50, x=105, y=160):
        pdf.text(38, 190, "FICTIF")


def _banner(pdf: FPDF, seed: int) -> None:
    pdf.set_fill_color(*RED)
    _style(pdf, 13, (255, 255, 255), bold=True)
    pdf.cell(0, 10, FICTIVE.upper(), align="C", fill=True, new_x="LMARGIN", new_y="NEXT")
    _style(pdf, 8, GREY)
    pdf.cell(
        0,
        5,
        "Données générées automatiquement pour les essais de l'API ENSU Documents "
        f"(graine {seed}).",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(5)


def _title(pdf: FPDF, document: DocumentPlan) -> None:
    entry = document.entry
    _style(pdf, 15, DARK, bold=True)
    _text(pdf, 0, 7.5, entry.libelle)
    _style(pdf, 9, GREY)
    pdf.cell(
        0,
        6,
        f"Code document : {entry.code} · Famille : {FAMILY_LABELS[entry.famille]}"
        f" · Périodicité : {entry.periodicite}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)


def _subject_rows(subject: SubjectPlan) -> list[content.Line]:
    identifier = ("SIREN", subject.siren) if subject.siren else ("IDSP", subject.idsp or "")
    return [
        ("Dénomination", subject.denomination),
        identifier,
        ("Forme juridique", subject.forme_juridique),
        ("Adresse", f"{subject.adresse}, {subject.commune}"),
    ]


def _document_rows(document: DocumentPlan) -> list[content.Line]:
    rows = [
        (
            "Période",
            f"du {content.french_date(document.periode_debut)}"
            f" au {content.french_date(document.periode_fin)}",
        ),
        ("Date d'émission", content.french_date(document.date_emission)),
        ("IDENSUA", document.idensua),
    ]
    if document.docdistrib:
        rows.append(("DOCDISTRIB", document.docdistrib))
    if document.doccfs:
        rows.append(("DOCCFS", document.doccfs))
    return rows


def _section(
    pdf: FPDF, heading: str, rows: list[content.Line], *, numbers_right: bool = False
) -> None:
    pdf.set_fill_color(238, 240, 244)
    _style(pdf, 10, DARK, bold=True)
    pdf.cell(0, 7, f" {heading}", fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    label_width = 100 if numbers_right else 42
    for label, value in rows:
        _style(pdf, 9, GREY)
        pdf.cell(label_width, 6, label)
        pdf.set_text_color(*DARK)
        right = numbers_right and value.endswith(("€", "%"))
        _text(pdf, 0, 6, value, align="R" if right else "L")
    pdf.ln(4)


def _text(pdf: FPDF, width: float, height: float, text: str, align: str = "L") -> None:
    """One line, in a smaller size if need be (an IDENSUA); wrapped only as a last resort
    (``multi_cell`` costs several times ``cell``).
    """
    room = (width or pdf.w - pdf.r_margin - pdf.x) - 2 * pdf.c_margin
    size = pdf.font_size_pt
    while pdf.get_string_width(text) > room and pdf.font_size_pt > MIN_FONT_SIZE:
        pdf.set_font_size(pdf.font_size_pt - 0.5)
    if pdf.get_string_width(text) <= room:
        pdf.cell(width, height, text, align=align, new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.multi_cell(width, height, text, align=align, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(size)


def _footer(pdf: FPDF) -> None:
    pdf.set_auto_page_break(auto=False)
    pdf.set_y(-30)
    pdf.set_draw_color(*RED)
    pdf.set_line_width(0.3)
    pdf.line(18, pdf.get_y(), 192, pdf.get_y())
    pdf.ln(2)
    _style(pdf, 7.5, GREY)
    for line in FOOTER:
        pdf.cell(0, 4, line, align="C", new_x="LMARGIN", new_y="NEXT")


def _check_glyphs(pdf: FPDF, document: DocumentPlan) -> None:
    """Refuse a PDF in which a character would be missing (fpdf2 only logs it)."""
    missing = sorted({chr(code) for font in _truetype(pdf) for code in font.missing_glyphs})
    if missing:
        raise RenderError(
            f"{document.entry.code} for subject {document.subject.index}: characters "
            f"{''.join(missing)!r} are outside the sandbox alphabet (ensu.sandbox.pdf.ALPHABET)"
        )


@dataclass(frozen=True, slots=True)
class RenderJob:
    """A chunk of documents for one worker; blobs go to ``blob_dir`` when it is set."""

    documents: tuple[DocumentPlan, ...]
    fonts: FontFiles
    seed: int
    blob_dir: Path | None


@dataclass(frozen=True, slots=True)
class Rendered:
    sha256: bytes
    taille: int
    content: bytes | None  # None when the worker already stored the blob


@dataclass(frozen=True, slots=True)
class RenderResult:
    rendered: tuple[Rendered, ...]
    seconds: float  # time spent rendering, storage excluded


def render_job(job: RenderJob) -> RenderResult:
    """Render a chunk (in a worker process) and store the blobs on the filesystem."""
    store = FilesystemBlobStore(job.blob_dir) if job.blob_dir is not None else None
    rendered, seconds = [], 0.0
    for document in job.documents:
        start = time.perf_counter()
        data = render(document, fonts=job.fonts, seed=job.seed)
        seconds += time.perf_counter() - start
        name = digest(data)
        if store is not None:
            store.put_sync(name, data)
        rendered.append(Rendered(name, len(data), None if store else data))
    return RenderResult(tuple(rendered), seconds)


def placeholder() -> bytes:
    """The one tiny PDF that every document of a ``--metadata-only`` run points at.

    A core font (no TrueType needed) and a fixed date: the same bytes on every run.
    """
    pdf = FPDF(format=(105, 148))
    pdf.set_creation_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    pdf.set_title(f"{FICTIVE} (métadonnées seules)")
    pdf.set_producer("ENSU Documents")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 11)
    pdf.multi_cell(0, 6, "Document fictif - bac à sable", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    pdf.multi_cell(0, 5, "Contenu non généré : jeu de métadonnées pour les essais de volume.")
    return bytes(pdf.output())
