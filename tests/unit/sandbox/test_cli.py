"""``ensu sandbox generate`` (R-DATA-6): what ``make run`` calls on first start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ensu.cli import app
from ensu.config import Settings, get_settings

SMALL = ["--subjects", "2", "--years", "1", "--until", "2025", "--workers", "1"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """``get_settings`` is cached: each test reads ENSU_VAR_DIR afresh."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def migrated(monkeypatch: pytest.MonkeyPatch, sqlite_settings: Settings) -> None:
    monkeypatch.setenv("ENSU_VAR_DIR", str(sqlite_settings.var_dir))


def _count(var_dir: Path, table: str) -> int:
    with sqlite3.connect(var_dir / "ensu.db") as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def test_if_empty_generates_once_then_does_nothing(
    runner: CliRunner, migrated: None, sqlite_settings: Settings
) -> None:
    var_dir = sqlite_settings.var_dir
    first = runner.invoke(app, ["sandbox", "generate", "--if-empty", *SMALL])
    assert first.exit_code == 0, first.output
    assert "documents added" in first.output
    assert "ms of CPU per PDF" in first.output
    documents = _count(var_dir, "documents")
    assert documents > 0
    assert f"{documents:,} documents added" in first.output

    again = runner.invoke(app, ["sandbox", "generate", "--if-empty", "--seed", "2", *SMALL])
    assert again.exit_code == 0, again.output
    assert f"already holds {documents:,} documents: nothing generated" in again.output
    assert _count(var_dir, "documents") == documents
    assert _count(var_dir, "subjects") == 2
    assert _count(var_dir, "audit_events") == 1


def test_without_if_empty_another_seed_adds_to_a_populated_database(
    runner: CliRunner, migrated: None, sqlite_settings: Settings
) -> None:
    assert runner.invoke(app, ["sandbox", "generate", *SMALL]).exit_code == 0
    before = _count(sqlite_settings.var_dir, "documents")
    result = runner.invoke(app, ["sandbox", "generate", "--seed", "2", *SMALL])
    assert result.exit_code == 0, result.output
    assert _count(sqlite_settings.var_dir, "documents") > before


def test_an_unmigrated_database_exits_with_a_clear_message(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENSU_VAR_DIR", str(tmp_path))
    result = runner.invoke(app, ["sandbox", "generate", *SMALL])
    assert result.exit_code == 1
    assert "ensu db upgrade" in result.output


def test_bad_options_are_refused(runner: CliRunner, migrated: None) -> None:
    result = runner.invoke(app, ["sandbox", "generate", "--subjects", "0"])
    assert result.exit_code == 2
    assert "--subjects" in result.output
