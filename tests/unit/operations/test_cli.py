"""``ensu maintenance`` (R-SQ-1) and ``ensu availability report`` (R-SQ-2)."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import Result

from ensu.operations.maintenance import PARIS
from tests.support.cli import Invoke


def night(days: int) -> tuple[str, str]:
    """The Paris dates of the night ``days`` from today: its evening, its morning."""
    evening = dt.datetime.now(PARIS).date() + dt.timedelta(days=days)
    return evening.isoformat(), (evening + dt.timedelta(days=1)).isoformat()


def plan(run: Invoke, start: str, end: str) -> Result:
    result: Result = run("maintenance", "plan", "--start", start, "--end", end, "--reason", "r")
    return result


def test_plan_list_cancel(run: Invoke) -> None:
    evening, morning = night(2)
    planned = plan(run, f"{evening}T23:30", f"{morning}T01:00")
    assert planned.exit_code == 0, planned.output
    assert "window 1 planned" in planned.output
    assert "90 min of real time" in planned.output
    listed = run("maintenance", "list")
    assert listed.exit_code == 0, listed.output
    assert f"{evening}T23:30+01:00" in listed.output or f"{evening}T23:30+02:00" in listed.output
    second = plan(run, f"{morning}T03:00", f"{morning}T04:00")
    assert second.exit_code == 1
    assert "one window a night" in second.output
    assert run("maintenance", "cancel", "1").exit_code == 0
    assert run("maintenance", "cancel", "1").exit_code == 1
    assert plan(run, f"{morning}T03:00", f"{morning}T04:00").exit_code == 0
    every = run("maintenance", "list", "--all")
    assert "cancelled by" in every.output


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("{evening}T23:30", "{morning}T01:31", "2 h 01 of real time"),
        ("{evening}T22:30", "{evening}T23:30", "between 23:00 and 06:00"),
        ("2026-10-25T01:30", "2026-10-25T03:00", "2 h 30 of real time"),
        ("{morning}T02:30", "nonsense", "ISO 8601"),
    ],
)
def test_refused_windows_exit_1_with_the_reason(
    run: Invoke, start: str, end: str, message: str
) -> None:
    evening, morning = night(3)
    result = plan(
        run,
        start.format(evening=evening, morning=morning),
        end.format(evening=evening, morning=morning),
    )
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_availability_report_prints_days_and_the_target(run: Invoke) -> None:
    result = run("availability", "report", "--from", "2026-11-01", "--to", "2026-11-02")
    assert result.exit_code == 0, result.output
    assert "97.16 %" in result.output
    assert "2026-11-01" in result.output
    assert "overall" in result.output
    as_json = run("availability", "report", "--from", "2026-11-01", "--to", "2026-11-01", "--json")
    assert '"unobserved": 1440' in as_json.output  # nothing was observed: all unavailable
    assert (
        run("availability", "report", "--from", "2026-11-02", "--to", "2026-11-01").exit_code == 1
    )
