"""Quota decisions: a téléservice's calls per minute, and why (R-Q-1, R-Q-2).

The default is the environment's (:data:`~ensu.consumers.schemas.DEFAULT_QUOTAS`: 500 a
minute in production, 50 in the sandbox). A higher quota is granted only by a recorded
producer decision that states its justification: the load peaks, the number of files the
use case processes and the periodicity of the calls. Every decision, lower or higher, is
kept (``quota_decisions``, append-only) with who decided it and who recorded it, and
journaled; the gateway enforces the new value within a second (its view cache).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.config import Environment
from ensu.consumers.errors import InvalidConsumerData, JustificationMissing, NotFoundError
from ensu.consumers.models import QuotaDecisionRecord, Teleservice, TeleserviceStatus
from ensu.consumers.schemas import DEFAULT_QUOTAS

__all__ = [
    "JUSTIFICATION_FIELDS",
    "MAX_PER_MINUTE",
    "JustificationMissing",
    "QuotaDecisionView",
    "QuotaGrant",
    "QuotaJustification",
    "decide_quota",
    "quota_history",
    "require_decision",
]

#: The same bound as at creation (``TeleserviceIn.quota_per_minute``).
MAX_PER_MINUTE = 1_000_000
MAX_TEXT = 2000
#: The justification's fields, in the words of R-Q-2.
JUSTIFICATION_FIELDS = {
    "load_peaks": "pics de charge",
    "files_count": "nombre de dossiers",
    "periodicity": "périodicité",
}


_LABELS = {**JUSTIFICATION_FIELDS, "decided_by": "auteur de la décision"}


@dataclass(frozen=True, slots=True)
class QuotaJustification:
    """Why a quota is needed; all three are required above the default (R-Q-2)."""

    load_peaks: str | None = None
    files_count: int | None = None
    periodicity: str | None = None

    def cleaned(self) -> QuotaJustification:
        """Texts stripped (blank is absent), lengths and the number of files checked."""
        if self.files_count is not None and self.files_count < 1:
            raise InvalidConsumerData("le nombre de dossiers doit être un entier positif")
        return QuotaJustification(
            load_peaks=_text(self.load_peaks, "pics de charge"),
            files_count=self.files_count,
            periodicity=_text(self.periodicity, "périodicité"),
        )

    def missing(self) -> list[str]:
        return [name for name in JUSTIFICATION_FIELDS if getattr(self, name) is None]


@dataclass(frozen=True, slots=True)
class QuotaGrant:
    """A producer's decision on a quota, as a writer hands it in: who decided, and why
    (R-Q-2). :func:`decide_quota` records it."""

    decided_by: str
    justification: QuotaJustification = QuotaJustification()


def require_decision(
    *, environment: Environment, per_minute: int, grant: QuotaGrant | None
) -> None:
    """R-Q-2, whoever asks (CLI, portal, habilitation workflow, tests): a quota above the
    environment's default needs a decision that names its decider and states the three
    justification fields; :class:`JustificationMissing` otherwise. At or below the
    default, no decision is needed."""
    default = DEFAULT_QUOTAS[environment]
    if per_minute <= default:
        return
    if grant is None:
        missing = ["decided_by", *JUSTIFICATION_FIELDS]
    else:
        missing = grant.justification.cleaned().missing()
        if not grant.decided_by.strip():
            missing.insert(0, "decided_by")
    if missing:
        labels = ", ".join(_LABELS.get(name, name) for name in missing)
        raise JustificationMissing(
            f"refusé : {per_minute}/min dépasse le quota par défaut de l'environnement "
            f"{environment.value} ({default}/min) ; une telle décision doit nommer son auteur "
            f"et être justifiée par les pics de charge, le nombre de dossiers et la "
            f"périodicité (manque : {labels})",
            missing,
        )


def _text(value: str | None, label: str) -> str | None:
    value = (value or "").strip()
    if len(value) > MAX_TEXT:
        raise InvalidConsumerData(f"{label} : {MAX_TEXT} caractères au plus")
    return value or None


@dataclass(frozen=True, slots=True)
class QuotaDecisionView:
    """One recorded decision on a téléservice's quota."""

    id_teleservice: str
    previous_per_minute: int
    per_minute: int
    #: The environment's default, to which the decision is compared.
    default_per_minute: int
    justification: QuotaJustification
    decided_by: str
    recorded_by: str
    decided_at: dt.datetime

    @property
    def above_default(self) -> bool:
        return self.per_minute > self.default_per_minute


async def _teleservice(session: AsyncSession, id_teleservice: str) -> Teleservice:
    row = await session.scalar(
        select(Teleservice).where(Teleservice.id_teleservice == id_teleservice)
    )
    if row is None:
        raise NotFoundError(f"téléservice inconnu : {id_teleservice}")
    return row


def _validate(
    row: Teleservice, per_minute: int, decided_by: str, justification: QuotaJustification
) -> None:
    """R-Q-2: bounds, a named decider, and the full justification above the default."""
    if row.status is TeleserviceStatus.REVOKED:
        raise InvalidConsumerData(f"le téléservice {row.id_teleservice} est révoqué")
    if not 1 <= per_minute <= MAX_PER_MINUTE:
        raise InvalidConsumerData(f"le quota doit être compris entre 1 et {MAX_PER_MINUTE}/min")
    if not decided_by or len(decided_by) > 200:
        raise InvalidConsumerData("la décision doit nommer son auteur (1 à 200 caractères)")
    require_decision(
        environment=row.environment,
        per_minute=per_minute,
        grant=QuotaGrant(decided_by=decided_by, justification=justification),
    )


def _view(row: QuotaDecisionRecord, teleservice: Teleservice) -> QuotaDecisionView:
    return QuotaDecisionView(
        id_teleservice=teleservice.id_teleservice,
        previous_per_minute=row.previous_per_minute,
        per_minute=row.per_minute,
        default_per_minute=DEFAULT_QUOTAS[teleservice.environment],
        justification=QuotaJustification(
            load_peaks=row.load_peaks, files_count=row.files_count, periodicity=row.periodicity
        ),
        decided_by=row.decided_by,
        recorded_by=row.recorded_by,
        # SQLite hands back naive datetimes; every stored time is UTC.
        decided_at=row.decided_at.replace(tzinfo=row.decided_at.tzinfo or dt.UTC),
    )


async def decide_quota(
    *,
    session: AsyncSession,
    id_teleservice: str,
    per_minute: int,
    decided_by: str,
    justification: QuotaJustification | None = None,
    actor: str,
    now: dt.datetime | None = None,
) -> QuotaDecisionView:
    """Record a producer's decision and set the téléservice's quota to ``per_minute``.

    ``decided_by`` names the producer's decider; ``actor`` is who records it (the
    journal's actor). Above the environment's default the three justification fields are
    required (R-Q-2), else :class:`JustificationMissing`; :class:`NotFoundError` for an
    unknown téléservice; :class:`InvalidConsumerData` for a revoked one or bad values.
    """
    moment = now or clock.now()
    decided_by = decided_by.strip()
    reasons = (justification or QuotaJustification()).cleaned()
    row = await _teleservice(session, id_teleservice)
    _validate(row, per_minute, decided_by, reasons)
    record = QuotaDecisionRecord(
        teleservice_id=row.id,
        previous_per_minute=row.quota_per_minute,
        per_minute=per_minute,
        load_peaks=reasons.load_peaks,
        files_count=reasons.files_count,
        periodicity=reasons.periodicity,
        decided_by=decided_by,
        recorded_by=actor,
        decided_at=moment,
    )
    row.quota_per_minute, row.updated_at = per_minute, moment
    session.add(record)
    await session.flush()
    view = _view(record, row)
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_QUOTA_DECIDED,
        actor=actor,
        details={
            "id_teleservice": id_teleservice,
            "from": view.previous_per_minute,
            "to": per_minute,
            "default": view.default_per_minute,
            "load_peaks": reasons.load_peaks,
            "files_count": reasons.files_count,
            "periodicity": reasons.periodicity,
            "decided_by": decided_by,
        },
    )
    return view


async def quota_history(*, session: AsyncSession, id_teleservice: str) -> list[QuotaDecisionView]:
    """Every decision on the téléservice's quota, oldest first."""
    row = await _teleservice(session, id_teleservice)
    records = await session.scalars(
        select(QuotaDecisionRecord)
        .where(QuotaDecisionRecord.teleservice_id == row.id)
        .order_by(QuotaDecisionRecord.decided_at, QuotaDecisionRecord.id)
    )
    return [_view(record, row) for record in records]
