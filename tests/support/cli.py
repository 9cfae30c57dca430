"""The ``ensu`` command as the tests run it: in-process (Typer's runner), on the test's
own ``var/`` directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ensu.cli import app as cli
from ensu.config import get_settings

Invoke = Callable[..., Result]


def invoker(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """``invoke(*args)`` runs ``ensu *args`` with ``ENSU_VAR_DIR=var_dir``; the settings
    are read afresh for the test and forgotten after it."""
    monkeypatch.setenv("ENSU_VAR_DIR", str(var_dir))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), env={"COLUMNS": "200"})

    yield invoke
    get_settings.cache_clear()
