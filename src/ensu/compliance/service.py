"""The compliance clock as the other features see it (CGU §3.4, §6.8, §9.3, §13, §14).

Keyword-only async functions over the caller's ``AsyncSession``; they never commit.
The rules live by topic and are re-exported here:

- security commitments and critical risks (R-SEC-1 to R-SEC-4):
  :func:`record_commitment` (the onboarding calls it at validation),
  :func:`validate_commitment`, :func:`reject_commitment`, :func:`record_risk`,
  :func:`resolve_risk`, :func:`commitments` — :mod:`ensu.compliance.commitments`;
- resiliation (R-SQ-5): :func:`request_resiliation`, :func:`end_of_legal_basis` —
  :mod:`ensu.compliance.resiliations`;
- versioned terms (R-SQ-6): :func:`publish_terms`, :func:`accept_terms`,
  :func:`terms_status` (the portal), :func:`terms_in_force` — :mod:`ensu.compliance.terms`;
- change notices (R-SQ-4): :func:`announce_change` — :mod:`ensu.compliance.changes`;
- notices (R-OPS-4): :func:`notices_of`; deadlines: :func:`deadlines_of` (one
  organisation) and :func:`upcoming_deadlines` (every deadline of the coming 120 days),
  for the portal's views;
- retention (R-TR-4): :func:`register_purger` for the features whose data the clock
  purges 6 years after the end of delivery.

The jobs that enforce the dates are in :mod:`ensu.compliance.jobs`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from ensu import clock
from ensu.compliance.changes import announce_change, changes
from ensu.compliance.commitments import (
    KIND_LABELS,
    commitment_in_force,
    commitments,
    deadline_of,
    record_commitment,
    record_risk,
    reject_commitment,
    resolve_risk,
    validate_commitment,
)
from ensu.compliance.errors import ComplianceError, NotFound, Refused
from ensu.compliance.models import (
    ChangeAnnouncement,
    CommitmentKind,
    CommitmentStatus,
    CriticalRisk,
    Party,
    Resiliation,
    SecurityCommitment,
)
from ensu.compliance.notices import notices_of
from ensu.compliance.resiliations import (
    end_of_legal_basis,
    request_resiliation,
    resiliations,
)
from ensu.compliance.retention import register_purger
from ensu.compliance.schemas import (
    ChangeView,
    CommitmentView,
    Deadline,
    NoticeView,
    ResiliationView,
    RiskView,
    TermsStatus,
    TermsView,
)
from ensu.compliance.terms import (
    accept_terms,
    publish_terms,
    terms_in_force,
    terms_status,
    versions,
)

__all__ = [
    "ChangeView",
    "CommitmentKind",
    "CommitmentView",
    "ComplianceError",
    "Deadline",
    "NotFound",
    "NoticeView",
    "Party",
    "Refused",
    "ResiliationView",
    "RiskView",
    "TermsStatus",
    "TermsView",
    "accept_terms",
    "announce_change",
    "changes",
    "commitment_in_force",
    "commitments",
    "deadline_of",
    "deadlines_of",
    "end_of_legal_basis",
    "notices_of",
    "publish_terms",
    "record_commitment",
    "record_risk",
    "register_purger",
    "reject_commitment",
    "request_resiliation",
    "resiliations",
    "resolve_risk",
    "terms_in_force",
    "terms_status",
    "upcoming_deadlines",
    "validate_commitment",
    "versions",
]

#: The span of "the coming deadlines" view (the first reminder is 120 days ahead).
UPCOMING_DAYS = 120


async def _deadlines(
    session: AsyncSession, siret: str | None, since: dt.date, until: dt.date | None
) -> list[Deadline]:
    def window(
        column: QueryableAttribute[Any], owner: QueryableAttribute[Any] | None = None
    ) -> list[ColumnElement[bool]]:
        """``column`` between the dates; with ``owner``, of the organisation ``siret``."""
        bounds = [column >= since]
        if until is not None:
            bounds.append(column <= until)
        if owner is not None and siret is not None:
            bounds.append(owner == siret)
        return bounds

    found: list[Deadline] = []
    statement = select(SecurityCommitment).where(
        SecurityCommitment.status == CommitmentStatus.VALIDATED,
        *window(SecurityCommitment.deadline, SecurityCommitment.organisation_siret),
    )
    for row in await session.scalars(statement):
        found.append(
            Deadline(
                row.deadline,
                "commitment",
                f"nouvelle {KIND_LABELS[row.kind]} à transmettre",
                row.organisation_siret,
                row.id_teleservice,
            )
        )
    risks = select(CriticalRisk).where(
        CriticalRisk.resolved_at.is_(None),
        *window(CriticalRisk.resolution_deadline, CriticalRisk.organisation_siret),
    )
    for risk in await session.scalars(risks):
        assert risk.resolution_deadline is not None  # the window excludes NULL
        found.append(
            Deadline(
                risk.resolution_deadline,
                "risk",
                "résolution d'un risque critique",
                risk.organisation_siret,
                risk.id_teleservice,
            )
        )
    ends = select(Resiliation).where(
        Resiliation.ended_at.is_(None),
        Resiliation.cancelled_at.is_(None),
        *window(Resiliation.effective_on, Resiliation.organisation_siret),
    )
    for end in await session.scalars(ends):
        found.append(
            Deadline(
                end.effective_on,
                "resiliation",
                "fin de l'échange (résiliation)",
                end.organisation_siret,
                end.id_teleservice,
            )
        )
    for change in await session.scalars(
        select(ChangeAnnouncement).where(*window(ChangeAnnouncement.effective_on))
    ):
        found.append(Deadline(change.effective_on, "change", change.title, None, None))
    return sorted(found, key=lambda deadline: (deadline.on, deadline.kind))


async def deadlines_of(
    *, session: AsyncSession, organisation_siret: str, today: dt.date | None = None
) -> list[Deadline]:
    """Every coming deadline of one organisation (and the announced changes)."""
    return await _deadlines(session, organisation_siret, today or clock.today_paris(), None)


async def upcoming_deadlines(
    *, session: AsyncSession, today: dt.date | None = None, days: int = UPCOMING_DAYS
) -> list[Deadline]:
    """Every deadline of the coming ``days`` days, every organisation (staff's view)."""
    since = today or clock.today_paris()
    return await _deadlines(session, None, since, since + dt.timedelta(days=days))
