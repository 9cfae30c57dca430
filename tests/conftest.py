"""Shared fixtures: settings in a temporary ``var/``, migrated databases on SQLite and
PostgreSQL, and the rule that a test needing an unreachable service fails under CI.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.config import Settings
from tests.support.cli import Invoke, invoker

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_ADMIN_URL = os.environ.get(
    "ENSU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ENSU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


#: Under mutation testing (``make mutation``; mutmut sets ``MUTANT_UNDER_TEST`` and runs
#: each mutant's tests with ``-x``): the exact unit tests of the mutated modules first,
#: the property suite and the tests through the whole app last, so that a mutant is
#: killed by the fast test that names it rather than after minutes of slower ones.
MUTATION_ORDER = {
    "test_checks.py": 0,
    "test_tokens.py": 0,
    "test_perimeter.py": 0,
    "test_verify.py": 1,
    "test_witness.py": 2,
    "test_token_mutants.py": 3,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if "MUTANT_UNDER_TEST" in os.environ:
        items.sort(key=lambda item: MUTATION_ORDER.get(item.path.name, len(MUTATION_ORDER)))


def require_service(name: str, url: str) -> None:
    """Skip (locally) or fail (under CI=true) when the service at ``url`` is unreachable."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return
    except OSError as exc:
        message = f"{name} unreachable at {parts.hostname}:{parts.port}: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: services are required)")
        pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session; its SQLAlchemy URL."""
    require_service("PostgreSQL", POSTGRES_ADMIN_URL)
    name = f"ensu_test_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # name is ours: hex only
    parts = urlsplit(POSTGRES_ADMIN_URL)
    url = parts._replace(scheme="postgresql+psycopg", path=f"/{name}").geturl()
    db.upgrade(url)
    yield url
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, var_dir: Path) -> str:
    """A migrated, empty database: SQLite in the test's ``var/``, or PostgreSQL."""
    if request.param == "sqlite":
        sqlite_url = f"sqlite+aiosqlite:///{var_dir / 'ensu.db'}"
        db.upgrade(sqlite_url)
        return sqlite_url
    postgres_url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(postgres_url)
    return postgres_url


def _truncate_postgres(url: str) -> None:
    """Empty every table but the migrations' own data (version, catalogue)."""
    plain = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT IN ('alembic_version', 'document_codes')"
            )
        ]
        if tables:
            quoted = ", ".join(f'"{table}"' for table in tables)
            # The journal's tables refuse TRUNCATE by trigger; a superuser may bypass them.
            connection.execute("SET session_replication_role = replica")
            connection.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


@pytest.fixture
def settings(var_dir: Path, database_url: str) -> Settings:
    return Settings(var_dir=var_dir, database_url=database_url)


@pytest.fixture
def sqlite_settings(var_dir: Path) -> Settings:
    """Settings on a migrated SQLite database only (for tests not about storage)."""
    settings = Settings(var_dir=var_dir)
    db.upgrade(settings.database_url)
    return settings


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(settings.database_url)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def run(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """``run(*args)``: the ``ensu`` command on the test's migrated SQLite database."""
    yield from invoker(sqlite_settings.var_dir, monkeypatch)
