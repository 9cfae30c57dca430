"""An operator's restore drill (R-SQ-3): backup while the server serves, destroy the var
directory (and the PostgreSQL database), restore, then ``ensu journal verify`` passes
and the same documents are served, byte for byte. On SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from ensu.config import get_settings
from tests.conftest import POSTGRES_ADMIN_URL, require_service
from tests.functional.conftest import (
    SIREN,
    A,
    Var,
    api_headers,
    app_server,
    free_port,
    prepare,
    request_token,
)
from tests.support.cli import Invoke, invoker


@pytest.fixture
def empty_postgres() -> Iterator[tuple[str, str]]:
    """A new, empty PostgreSQL database: its SQLAlchemy URL and its name."""
    require_service("PostgreSQL", POSTGRES_ADMIN_URL)
    name = f"ensu_drill_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(POSTGRES_ADMIN_URL)
    yield parts._replace(scheme="postgresql+psycopg", path=f"/{name}").geturl(), name
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _recreate(name: str) -> None:
    """Destroy the database and make it again, empty (what the operator would do)."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def _cli(var: Var, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """The ``ensu`` command on ``var``'s deployment; the API port is a free one, so that
    the "server stopped" check looks at this deployment's port only."""
    if var.database_url:
        monkeypatch.setenv("ENSU_DATABASE_URL", var.database_url)
    monkeypatch.setenv("ENSU_LISTEN_PORT", str(free_port()))
    monkeypatch.setenv("ENSU_METRICS_PORT", "0")
    return invoker(var.directory, monkeypatch)


def _served(var: Var) -> dict[str, bytes]:
    """The documents of SIREN as served: idensua → PDF bytes (digest checked)."""
    served = {}
    with (
        app_server(var.settings()) as port,
        httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=var.context(A)) as client,
    ):
        token = request_token(client, A.client_id).json()["access_token"]
        for document in var.of(SIREN):
            answer = client.get(
                f"/ensudocuments/v1/documents/IDENSUA/{document.idensua}/contenu",
                headers=api_headers(token, A),
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["repr-digest"].startswith("sha-256=")
            served[document.idensua] = answer.content
    return served


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_restore_drill(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-SQ-3: backup, destroy, restore, verify, serve."""
    database = None
    if kind == "postgresql":
        database = request.getfixturevalue("empty_postgres")
    var = prepare(tmp_path / "var", database_url=database[0] if database else None)
    before = _served(var)
    assert {hashlib.sha256(pdf).hexdigest() for pdf in before.values()} == {
        hashlib.sha256(document.content).hexdigest() for document in var.of(SIREN)
    }
    run = next(_cli(var, monkeypatch))
    made = run("backup", "create")
    assert made.exit_code == 0, made.output
    path = Path(made.output.strip().splitlines()[-1])
    assert path.is_dir()
    assert path.parent == tmp_path / "backups"
    assert path.name in run("backup", "list").output

    shutil.rmtree(var.directory)
    if database:
        _recreate(database[1])
    restored = run("backup", "restore", path.name)
    assert restored.exit_code == 0, restored.output
    verified = run("journal", "verify")
    assert verified.exit_code == 0, verified.output
    assert "journal verified" in verified.output
    assert _served(var) == before
    again = run("backup", "restore", path.name)  # never over a deployment that exists
    assert again.exit_code == 1
    assert "is not empty" in again.output
    get_settings.cache_clear()
