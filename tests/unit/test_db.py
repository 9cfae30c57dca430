"""Migrations: ``upgrade head`` then the models and the migrations agree, on both stores."""

from __future__ import annotations

import re
from pathlib import Path

from ensu import db

VERSIONS = Path(db.__file__).parent / "migrations" / "versions"


def test_models_and_migrations_agree(database_url: str) -> None:
    db.upgrade(database_url)  # already at head: a second upgrade is a no-op
    db.check(database_url)


def test_migration_files_are_date_prefixed() -> None:
    names = sorted(path.name for path in VERSIONS.glob("*.py"))
    assert names, "no migration found"
    for name in names:
        assert re.match(r"\d{4}_\d{2}_\d{2}_\d{4}_[0-9a-f]{12}_\w+\.py$", name), name
