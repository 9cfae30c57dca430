"""``create_app()``: the API, one ``include_router`` per feature, one error handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from ensu import db
from ensu.config import Settings, get_settings
from ensu.documents import service as documents
from ensu.errors import PROBLEM_JSON, EnsuError
from ensu.operations.router import router as operations_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI application for ``settings`` (default: read from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url)
        sessionmaker = db.make_sessionmaker(engine)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.blob_store = documents.make_blob_store(
            settings=settings, sessionmaker=sessionmaker
        )
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="API ENSU Documents",
        version="1.0.0",
        description="Échange des documents fiscaux des usagers professionnels (DGFIP).",
        lifespan=lifespan,
    )
    app.include_router(operations_router)
    app.add_exception_handler(EnsuError, _problem)  # type: ignore[arg-type]
    return app


async def _problem(request: Request, error: EnsuError) -> Response:
    correlation_id = request.headers.get("x-correlation-id")
    headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
    headers.update(error.headers())
    return Response(
        error.body(correlation_id=correlation_id),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )
