"""Alembic environment: runs the migrations on the async engine of ``database_url``."""

from __future__ import annotations

import asyncio
import concurrent.futures

from alembic import context
from sqlalchemy.engine import Connection

import ensu.models  # noqa: F401 - registers every feature's tables on Base.metadata
from ensu.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    assert url, "database url missing"
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(url))
        return
    # Called from inside a running event loop (a test, a server hook): run the migration
    # on its own loop in a worker thread rather than fail with a never-awaited coroutine.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _run_async(url)).result()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `ensu db upgrade`")
run_migrations_online()
