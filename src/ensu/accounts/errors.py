"""Errors of the accounts feature.

::

    AccountError
    ├── InvalidAccountData   one French message per form field (``fields``)
    ├── NotAllowed           the actor's role does not allow the change
    └── UnknownPerson        no such account
"""

from __future__ import annotations

from collections.abc import Mapping


class AccountError(Exception):
    """Base of the feature's errors."""


class InvalidAccountData(AccountError):
    """Input refused: ``fields`` maps each form field to its French message."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = dict(fields)


class UnknownPerson(AccountError):
    """No account with that address or id."""


class NotAllowed(AccountError):
    """The actor may not make this change (people are managed by admins, R-HAB-2)."""
