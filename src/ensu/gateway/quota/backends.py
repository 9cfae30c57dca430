"""Which quota counter the settings ask for (R-Q-1), built without any I/O."""

from __future__ import annotations

from typing import Literal

from ensu.config import Settings
from ensu.gateway.quota.counter import COUNTER_TIMEOUT_SECONDS, QuotaCounter

QuotaBackend = Literal["sqlite", "postgresql", "redis"]


def backend_for(settings: Settings) -> QuotaBackend:
    """The configured backend, else Redis when configured, else the database's kind."""
    if settings.quota_backend is not None:
        return settings.quota_backend
    if settings.redis_url:
        return "redis"
    return "sqlite" if settings.is_sqlite else "postgresql"


def make_counter(settings: Settings) -> QuotaCounter:
    """The counter of ``settings``; no I/O here: connections open on the first hit.

    Raises ``ValueError`` for a backend the settings cannot serve (Redis without
    ``redis_url``, PostgreSQL on a SQLite database), so the app refuses to start.

    The stores' clients give up after ``ENSU_STORE_TIMEOUT_SECONDS`` (Redis: after the
    quota check's own bound, when shorter), so a slow or cut store fails the hit with
    503 930003 instead of holding it (R-Q-1 fails closed).
    """
    # Each backend is imported when chosen: the clients of the others (redis-py, psycopg,
    # about 20 MB each) stay out of the process.
    backend = backend_for(settings)
    if backend == "redis":
        from ensu.gateway.quota.redis import RedisCounter  # noqa: PLC0415

        if not settings.redis_url:
            raise ValueError("ENSU_QUOTA_BACKEND=redis needs ENSU_REDIS_URL")
        return RedisCounter.from_url(
            settings.redis_url,
            prefix=f"ensu:{settings.environment.value}:quota:",
            timeout=min(settings.store_timeout_seconds, COUNTER_TIMEOUT_SECONDS),
        )
    if backend == "postgresql":
        from ensu.gateway.quota.postgresql import PostgresCounter  # noqa: PLC0415

        if settings.is_sqlite:
            raise ValueError("ENSU_QUOTA_BACKEND=postgresql needs a PostgreSQL database_url")
        return PostgresCounter.from_url(
            settings.database_url, timeout=settings.store_timeout_seconds
        )
    from ensu.gateway.quota.sqlite import SQLiteCounter  # noqa: PLC0415

    return SQLiteCounter(settings.var_dir / "quota.db")
