"""The consumers feature's errors; the message is fit for an operator::

    ConsumerError
    ├── InvalidConsumerData        input refused, or an identifier already taken
    │   └── JustificationMissing   a quota above the default without its decision (R-Q-2)
    ├── NotFoundError              no such organisation or téléservice
    └── InvalidTransition          a status change not allowed from the current status

Their own module so that ``service`` and ``quota`` both raise them without importing
each other.
"""

from __future__ import annotations


class ConsumerError(Exception):
    """Base of this feature's errors; the message is fit for an operator."""


class InvalidConsumerData(ConsumerError):
    """Input refused by validation, or an identifier already taken."""


class JustificationMissing(InvalidConsumerData):
    """A quota above the default without its full justification or decider (R-Q-2)."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        #: The missing fields' names (keys of ``quota.JUSTIFICATION_FIELDS``, or
        #: ``decided_by``).
        self.missing = missing


class NotFoundError(ConsumerError):
    """No such organisation or téléservice."""


class InvalidTransition(ConsumerError):
    """The status change is not allowed from the current status."""
