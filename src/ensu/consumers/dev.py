"""The development sandbox consumers, made idempotently for ``make run`` and the README.

One per development certificate of ``ensu pki init`` (``consumer-a.pem``,
``consumer-b.pem``), with stable identifiers so that documentation and scripts can name
them. ``consumer-a`` sees the whole catalogue over a period covering the sandbox data;
``consumer-b`` has a narrower perimeter (two families, two years) to show refusals
(R-GW-5). Run again after the PKI is regenerated, the certificates are re-registered.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from ensu.config import Environment
from ensu.consumers import service
from ensu.consumers.schemas import FAMILIES, CertificateRef


@dataclass(frozen=True, slots=True)
class DevConsumer:
    stem: str  # the PKI file name without .pem
    siret: str
    organisation: str
    name: str
    client_id: str
    id_teleservice: str
    families: frozenset[str]
    period_start: dt.date
    period_end: dt.date


DEV_CONSUMERS = (
    DevConsumer(
        stem="consumer-a",
        siret="13000000000005",
        organisation="Cabinet Comptable Fictif A",
        name="Téléservice de développement A",
        client_id="dev-consumer-a",
        id_teleservice="TS-DEV-CONSUMER-A",
        families=FAMILIES,
        period_start=dt.date(2010, 1, 1),
        period_end=dt.date(2035, 12, 31),
    ),
    DevConsumer(
        stem="consumer-b",
        siret="13000000000013",
        organisation="Éditeur Logiciel Fictif B",
        name="Téléservice de développement B",
        client_id="dev-consumer-b",
        id_teleservice="TS-DEV-CONSUMER-B",
        families=frozenset({"declaratives", "paiements"}),
        period_start=dt.date(2024, 1, 1),
        period_end=dt.date(2025, 12, 31),
    ),
)


class Outcome(enum.StrEnum):
    CREATED = "created"
    CERTIFICATE_UPDATED = "certificate updated"
    UNCHANGED = "unchanged"
    NO_CERTIFICATE = "skipped: no certificate"


async def ensure_dev(
    *, session: AsyncSession, pki_dir: Path, actor: str
) -> list[tuple[DevConsumer, Outcome]]:
    """Create the development consumers whose certificate exists under ``pki_dir``."""
    outcomes = []
    for consumer in DEV_CONSUMERS:
        pem = pki_dir / f"{consumer.stem}.pem"
        if not pem.is_file():
            outcomes.append((consumer, Outcome.NO_CERTIFICATE))
            continue
        certificate = CertificateRef.from_pem(pem.read_bytes())
        outcome = await _ensure_one(session, consumer, certificate, actor)
        outcomes.append((consumer, outcome))
    return outcomes


async def _ensure_one(
    session: AsyncSession, consumer: DevConsumer, certificate: CertificateRef, actor: str
) -> Outcome:
    existing = await service.get_by_client_id(session=session, client_id=consumer.client_id)
    if existing is None:
        await service.ensure_organisation(
            session=session, siret=consumer.siret, name=consumer.organisation, actor=actor
        )
        await service.create_teleservice(
            session=session,
            organisation_siret=consumer.siret,
            name=consumer.name,
            environment=Environment.SANDBOX,
            certificates=[certificate],
            families=consumer.families,
            period_start=consumer.period_start,
            period_end=consumer.period_end,
            valid_from=dt.date(2020, 1, 1),
            client_id=consumer.client_id,
            id_teleservice=consumer.id_teleservice,
            actor=actor,
        )
        return Outcome.CREATED
    if existing.thumbprints != {certificate.thumbprint}:
        await service.replace_certificates(
            session=session,
            id_teleservice=existing.id_teleservice,
            certificates=[certificate],
            actor=actor,
        )
        return Outcome.CERTIFICATE_UPDATED
    return Outcome.UNCHANGED
