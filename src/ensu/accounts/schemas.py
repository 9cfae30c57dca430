"""What the accounts feature hands out: people and sessions as plain values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ensu.accounts.models import SessionStage
from ensu.accounts.principal import Actor, ActorKind, StaffRole


@dataclass(frozen=True, slots=True)
class PersonView:
    id: int
    kind: ActorKind
    email: str
    name: str
    organisation_siret: str | None
    role: StaffRole | None
    active: bool
    created_at: dt.datetime

    @property
    def actor(self) -> Actor:
        """The identity every workflow function receives (R-HAB-1, R-HAB-2)."""
        return Actor(
            kind=self.kind,
            label=f"{self.kind.value}:{self.email}",
            person_id=self.id,
            email=self.email,
            organisation_siret=self.organisation_siret,
            role=self.role,
        )


@dataclass(frozen=True, slots=True)
class StaffCreated:
    """A new staff member and the TOTP secret, shown once to be enrolled."""

    person: PersonView
    totp_secret: str
    provisioning_uri: str


@dataclass(frozen=True, slots=True)
class SessionView:
    """One portal session; ``person`` is set from the second-factor stage on."""

    id: str
    stage: SessionStage
    csrf_token: str
    person: PersonView | None
    expires_at: dt.datetime

    @property
    def signed_in(self) -> PersonView | None:
        """The person when fully signed in (password, and TOTP for staff), else ``None``."""
        return self.person if self.stage is SessionStage.SIGNED_IN else None


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A new session: ``token`` goes into the cookie and nowhere else."""

    token: str
    view: SessionView


@dataclass(frozen=True, slots=True)
class SignInResult:
    """The outcome of one step of sign-in: ``person`` when it passed, else the French
    ``message`` to show (the same for an unknown address and a wrong password) and, when
    throttled, ``retry_after`` seconds."""

    person: PersonView | None
    message: str | None = None
    retry_after: float = 0.0

    @property
    def needs_second_factor(self) -> bool:
        return self.person is not None and self.person.kind is ActorKind.STAFF
