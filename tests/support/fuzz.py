"""Hypothesis settings of the fuzz tests (property: never a 500, always a structured
refusal or a valid result; R-GW-6).

``make test`` runs each with a few examples (:data:`DEFAULT_EXAMPLES`) and no deadline
(the machine is shared). The long run raises the number of examples of every one of
them: ``ENSU_FUZZ_EXAMPLES=5000 uv run pytest -m fuzz`` (README, "Fuzzing").
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 40
#: The end-to-end fuzz calls go through the whole app: fewer of them in ``make test``.
DEFAULT_CALLS = 15


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    raw = os.environ.get("ENSU_FUZZ_EXAMPLES", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def fuzz(default: int = DEFAULT_EXAMPLES) -> settings:
    """The settings of one fuzz test: ``default`` examples unless ENSU_FUZZ_EXAMPLES."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
