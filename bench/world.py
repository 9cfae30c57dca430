"""A prepared, throw-away ``var/`` for the bench: database, PKI, one téléservice, documents.

Built with the product's own services (as ``tests/functional/conftest.py`` does), in a
temporary folder: the bench never touches the repository's ``var/``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio
from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.settings import settings_for
from ensu import db
from ensu.config import Environment, Settings
from ensu.consumers import service as consumers
from ensu.consumers.quota import QuotaGrant, QuotaJustification
from ensu.consumers.schemas import FAMILIES, CertificateRef
from ensu.documents import service as documents
from ensu.documents.identifiers import luhn_valid, new_idensua
from ensu.documents.storage import digest
from ensu.pki import service as pki

SIRET = "13000000000005"  # Luhn-valid, fictive
STEM = "bench-consumer"
CLIENT_ID = "client-bench"
ID_TELESERVICE = "TS-BENCH"
#: R-Q-2: a quota above the default is a recorded decision, the bench's too.
BENCH_GRANT = QuotaGrant(
    decided_by="bench",
    justification=QuotaJustification(
        load_peaks="the bench's saturating load", files_count=1, periodicity="each bench run"
    ),
)
#: The highest quota a téléservice may have: the bench measures service, not refusals.
QUOTA_PER_MINUTE = 1_000_000
SUBJECTS = 16
#: Monthly VAT returns of one year per subject: SUBJECTS x 12 documents.
MONTHS = 12
CODE = "TVA-CA3"
YEAR = 2024
#: Incompressible bytes attached to each PDF, so that a document weighs what a real one does.
PDF_ATTACHMENT_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class World:
    """What the servers and the load generator need to know about the prepared data."""

    var_dir: Path
    idensua: tuple[str, ...]
    sirens: tuple[str, ...]
    pdf_bytes: int

    @property
    def pki(self) -> pki.PkiLayout:
        return pki.PkiLayout(self.var_dir / "pki")

    def certificate_header(self) -> str:
        """The PEM as nginx forwards it: ``$ssl_client_escaped_cert`` (URL-escaped)."""
        return quote(self.pki.client_cert(STEM).read_text(), safe="")


def sirens(count: int) -> tuple[str, ...]:
    """``count`` distinct Luhn-valid, fictive SIREN numbers."""
    found: list[str] = []
    base = 73282930
    while len(found) < count:
        stem = f"{base:08d}"
        found.append(next(stem + str(d) for d in range(10) if luhn_valid(stem + str(d))))
        base += 7
    return tuple(found)


def pdf(title: str) -> bytes:
    """A real one-page PDF with an incompressible attachment (fpdf2)."""
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=9)
    for number in range(20):
        document.cell(text=f"{title} - ligne {number:02d}", new_x="LMARGIN", new_y="NEXT")
    document.embed_file(bytes=os.urandom(PDF_ATTACHMENT_BYTES), basename="annexe.bin")
    return bytes(document.output())


def prepare(var_dir: Path) -> World:
    """Migrate, make the PKI and the consumer's certificate, register it, seed documents."""
    var_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(var_dir, quota="sqlite", redis_url=None)
    db.upgrade(settings.database_url)
    pki.init(directory=settings.pki_dir_path)
    pki.issue_client(directory=settings.pki_dir_path, name=STEM)
    return anyio.run(_seed, var_dir, settings)


async def _seed(var_dir: Path, settings: Settings) -> World:
    engine = db.make_engine(settings.database_url)
    sessionmaker = db.make_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            pem = pki.PkiLayout(settings.pki_dir_path).client_cert(STEM).read_text()
            await _register(session, pem)
            return await _documents(session, settings, sessionmaker, var_dir)
    finally:
        await engine.dispose()


async def _register(session: AsyncSession, pem: str) -> None:
    await consumers.ensure_organisation(
        session=session, siret=SIRET, name="Organisation du banc d'essai", actor="bench"
    )
    await consumers.create_teleservice(
        session=session,
        organisation_siret=SIRET,
        name="Téléservice du banc d'essai",
        environment=Environment.SANDBOX,
        certificates=[CertificateRef.from_pem(pem)],
        families=sorted(FAMILIES),
        period_start=dt.date(2020, 1, 1),
        period_end=dt.date(2030, 12, 31),
        networks=["127.0.0.0/8"],
        valid_from=dt.date(2020, 1, 1),
        quota_per_minute=QUOTA_PER_MINUTE,
        quota_decision=BENCH_GRANT,
        client_id=CLIENT_ID,
        id_teleservice=ID_TELESERVICE,
        actor="bench",
    )


async def _documents(
    session: AsyncSession,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    var_dir: Path,
) -> World:
    store = documents.make_blob_store(settings=settings, sessionmaker=sessionmaker)
    identifiers: list[str] = []
    sizes: list[int] = []
    numbers = sirens(SUBJECTS)
    for siren in numbers:
        subject = await documents.ensure_subject(
            session=session, siren=siren, idsp=None, denomination=f"Entreprise {siren}"
        )
        for month in range(1, MONTHS + 1):
            start = dt.date(YEAR, month, 1)
            end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            content = pdf(f"{siren} {CODE} {start.isoformat()}")
            await store.put(content)
            idensua = new_idensua()
            await documents.add_document(
                session=session,
                subject=subject,
                document=documents.NewDocument(
                    code=CODE,
                    periode_debut=start,
                    periode_fin=end,
                    date_emission=end + dt.timedelta(days=15),
                    sha256=digest(content),
                    taille=len(content),
                    idensua=idensua,
                ),
            )
            identifiers.append(idensua)
            sizes.append(len(content))
    return World(var_dir, tuple(identifiers), numbers, sum(sizes) // len(sizes))
