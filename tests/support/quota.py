"""A recorded quota decision for test worlds that need more calls than the default
(R-Q-2: the service refuses a higher quota without one, tests included)."""

from __future__ import annotations

from ensu.consumers.quota import QuotaGrant, QuotaJustification

TEST_GRANT = QuotaGrant(
    decided_by="test suite",
    justification=QuotaJustification(
        load_peaks="the test suite's bursts", files_count=1, periodicity="each test run"
    ),
)
