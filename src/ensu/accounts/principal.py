"""Who acts: the identity every workflow function receives (R-HAB-1, R-HAB-2).

The portal builds an :class:`Actor` from a signed-in session, the staff API from an OAuth
client, the CLI from the shell user; the features below (habilitations, compliance,
operations) decide what the actor may do from it alone, never from where it came from.

Staff roles are ordered (``reporter`` < ``instructor`` < ``manager``), with ``admin``
above them all: a reporter reads, an instructor decides on requests, a manager also
decides on quotas, risks and cuts, an admin manages people.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Actor", "ActorKind", "StaffRole"]


class StaffRole(enum.StrEnum):
    """The producer's staff roles, lowest first (DataPass: reporter, instructor, manager)."""

    REPORTER = "reporter"
    INSTRUCTOR = "instructor"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """The role's place in the order: a role has the rights of every lower one."""
        return list(StaffRole).index(self)

    def at_least(self, other: StaffRole) -> bool:
        """True when this role includes ``other``'s rights."""
        return self.rank >= other.rank


class ActorKind(enum.StrEnum):
    APPLICANT = "applicant"
    STAFF = "staff"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """One person (or the system's clock) acting; ``label`` is what the journal records.

    An applicant belongs to exactly one organisation (``organisation_siret``); staff have a
    ``role`` and no organisation; the system (jobs, the CLI run by an operator) has neither.
    """

    kind: ActorKind
    label: str
    person_id: int | None = None
    email: str | None = None
    organisation_siret: str | None = None
    role: StaffRole | None = None

    def __post_init__(self) -> None:
        if self.kind is ActorKind.APPLICANT and self.organisation_siret is None:
            raise ValueError("an applicant acts for an organisation")
        if self.kind is ActorKind.STAFF and self.role is None:
            raise ValueError("a staff member has a role")
        if self.kind is not ActorKind.STAFF and self.role is not None:
            raise ValueError("only staff have a role")

    @classmethod
    def system(cls, label: str) -> Actor:
        """The clock's jobs or an operator's shell command (``cli:user``, ``job:name``)."""
        return cls(kind=ActorKind.SYSTEM, label=label)

    def is_staff(self, at_least: StaffRole = StaffRole.REPORTER) -> bool:
        """True for staff whose role includes ``at_least``."""
        return self.role is not None and self.role.at_least(at_least)

    def acts_for(self, siret: str) -> bool:
        """True for an applicant of the organisation ``siret``."""
        return self.kind is ActorKind.APPLICANT and self.organisation_siret == siret
