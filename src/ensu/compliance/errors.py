"""The compliance clock's errors; the message is fit for the person who asked (French)::

    ComplianceError
    ├── Refused            the terms forbid it (notice too short, no reason, not allowed)
    └── NotFound           no such commitment, risk, resiliation, version

Consumers' own errors (unknown téléservice) pass through as they are.
"""

from __future__ import annotations


class ComplianceError(Exception):
    """Base of this feature's errors."""


class Refused(ComplianceError):
    """The terms forbid what was asked; the message says which rule."""


class NotFound(ComplianceError):
    """No such record."""
