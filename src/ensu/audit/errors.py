"""The journal's failures, as the API renders them: 503 with code 930002 (R-TR-2).

Both are :class:`ensu.errors.JournalUnavailable`, so the app's error handler (or the
gateway's ``send_problem``) answers them as the contract says; ``reason`` goes to the log.
"""

from __future__ import annotations

from ensu.errors import JournalUnavailable


class JournalUnavailableError(JournalUnavailable):
    """The journal store cannot durably write: no data may leave (R-TR-2)."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(None, reason="journal_store_unavailable")
        self.internal = detail


class JournalIntegrityStop(JournalUnavailable):
    """An integrity breach was detected: operations stop until it is resolved (R-TR-2)."""

    def __init__(self, problem: str | None = None) -> None:
        super().__init__(None, reason="journal_integrity_stop")
        self.internal = problem
