"""Floors for the CI smoke run: ``python -m bench --quick --check``.

Each floor is a ratio to a reference measured in the same run (so a slower or busier
machine moves both sides), set at about **half** of the lowest figure the arm gave on the reference
machine kind (2 cores, one per side): a run below a floor means the arm's speed roughly
halved — a gross regression, not noise. Raise a floor when the code gets faster for good,
so that the gain cannot silently be lost again.
"""

from __future__ import annotations

from collections.abc import Mapping

#: arm key -> (reference key, least ratio of the arm's requests/s to the reference's).
FLOORS: Mapping[str, tuple[str, float]] = {
    # Measured (2026-11-27, 5 s rounds): metadata 0.05-0.12 x C2, list 0.05-0.06,
    # content 0.04-0.06, token 0.01, Redis arms 0.04-0.05; C2 itself moved 16k-33k req/s
    # between runs. Before the lean hot path metadata gave 0.012 x C2: these floors catch
    # a return to it, and any halving from the lowest figures seen.
    "metadata/sqlite": ("C2", 0.02),
    "list/sqlite": ("C2", 0.015),
    "content/sqlite": ("C2", 0.012),
    "token": ("C2", 0.002),
    "metadata/redis": ("C2", 0.015),
    "list/redis": ("C2", 0.015),
    "content/redis": ("C2", 0.012),
}


def regressions(rates: Mapping[str, float]) -> list[str]:
    """One line per arm below its floor (or not measured); empty when all hold."""
    problems = []
    for arm, (reference, floor) in FLOORS.items():
        rate, base = rates.get(arm), rates.get(reference)
        if rate is None or base is None or base <= 0:
            problems.append(f"{arm}: not measured (or no {reference} reference)")
            continue
        ratio = rate / base
        if ratio < floor:
            problems.append(f"{arm}: {ratio:.3f} x {reference}, below the floor {floor:.3f}")
    return problems
