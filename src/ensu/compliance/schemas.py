"""What the compliance clock hands out: read-only views of its records, for the portal,
the CLI and the other features (never the tables themselves)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ensu.compliance.models import CommitmentKind, CommitmentStatus, Party, ResiliationKind
from ensu.config import Environment


@dataclass(frozen=True, slots=True)
class CommitmentView:
    id: int
    id_teleservice: str
    organisation_siret: str
    kind: CommitmentKind
    reference_date: dt.date
    deadline: dt.date
    status: CommitmentStatus
    reservations: str | None
    provisional: bool


@dataclass(frozen=True, slots=True)
class RiskView:
    id: int
    id_teleservice: str
    description: str
    resolution_deadline: dt.date | None
    resolved: bool


@dataclass(frozen=True, slots=True)
class ResiliationView:
    id: int
    id_teleservice: str
    organisation_siret: str
    party: Party
    kind: ResiliationKind
    reason: str
    requested_on: dt.date
    effective_on: dt.date
    ended: bool


@dataclass(frozen=True, slots=True)
class TermsView:
    id: int
    environment: Environment
    version: str
    effective_on: dt.date
    sha256: str
    builtin: bool


@dataclass(frozen=True, slots=True)
class TermsStatus:
    """What the portal shows an organisation for one environment it exchanges in."""

    environment: Environment
    in_force: TermsView
    accepted_version: str | None
    accepted_at: dt.datetime | None

    @property
    def up_to_date(self) -> bool:
        return self.accepted_version == self.in_force.version


@dataclass(frozen=True, slots=True)
class ChangeView:
    id: int
    environment: Environment
    title: str
    announced_on: dt.date
    effective_on: dt.date
    emergency_reason: str | None


@dataclass(frozen=True, slots=True)
class NoticeView:
    """A notice as the portal and the CLI show it."""

    id: int
    kind: str
    organisation_siret: str | None
    id_teleservice: str | None
    recipient: str | None
    subject: str
    body: str
    status: str
    created_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Deadline:
    """One dated obligation, as the portal lists it (French ``label``)."""

    on: dt.date
    kind: str  # commitment, risk, resiliation, change
    label: str
    organisation_siret: str | None
    id_teleservice: str | None
