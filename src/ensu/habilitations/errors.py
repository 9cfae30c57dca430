"""The habilitations feature's errors; every message is French, fit for the applicant::

    HabilitationError
    ├── InvalidRequestData     a field or a block refused; ``errors`` maps field to message
    ├── RequestNotFound        no such request, *or* one the actor may not see (the same)
    ├── ActionForbidden        the actor may not fire this transition (role, organisation)
    ├── TransitionRefused      the transition does not start from the request's state,
    │                          or a condition of the table is not met (reason, analysis)
    ├── AttachmentRefused      not a PDF, too large, unknown
    └── ProvisioningFailed     the téléservice could not be created or updated (R-HAB-4)

An applicant asking for another organisation's request gets :class:`RequestNotFound`,
never :class:`ActionForbidden`: whether it exists is none of their business.
"""

from __future__ import annotations

from collections.abc import Mapping


class HabilitationError(Exception):
    """Base of this feature's errors; the message is French."""


class InvalidRequestData(HabilitationError):
    """Input refused; ``errors`` maps each field (``block.field``) to its French message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(
            "; ".join(f"{field} : {message}" for field, message in self.errors.items())
        )


class RequestNotFound(HabilitationError):
    """No such request, or not visible to the actor (indistinguishable on purpose)."""


class ActionForbidden(HabilitationError):
    """The actor's role or organisation does not allow the action."""


class TransitionRefused(HabilitationError):
    """The action does not apply to the request's state, or its condition is not met."""


class AttachmentRefused(HabilitationError):
    """An attachment that is not a PDF, too large, or not found."""


class ProvisioningFailed(HabilitationError):
    """The stage's téléservice could not be created or updated (R-HAB-4)."""
