"""``create_app()``: the API, one ``include_router`` per feature, one error handler.

The gateway (:mod:`ensu.gateway.layer`) wraps every route under ``/ensudocuments/v1``;
the OAuth endpoints authenticate their clients themselves (RFC 6749 §2.3, RFC 8705).

A database that is down, cut off or slower than ``ENSU_STORE_TIMEOUT_SECONDS`` (the
engine is bounded, :func:`ensu.db.make_engine`) fails the route with one of
:func:`ensu.db.store_failures`: answered 503 930004 with ``Retry-After``, journaled by the
gateway like any refusal, never an unstructured 500 nor a hung request.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from ensu import db, logs
from ensu import docs as api_docs
from ensu.audit.service import Journal
from ensu.compliance.jobs import Scheduler
from ensu.config import Settings, get_settings
from ensu.documents import catalogue
from ensu.documents import service as documents
from ensu.documents.reader import make_reader
from ensu.documents.router import DIRECT_ROUTES
from ensu.documents.router import router as documents_router
from ensu.documents.witness_router import router as journal_router
from ensu.errors import (
    PROBLEM_JSON,
    EnsuError,
    InternalError,
    InvalidParameter,
    MethodNotAllowed,
    RouteNotFound,
    StoreUnavailable,
)
from ensu.gateway.caller import CORRELATION_KEY, trace_of
from ensu.gateway.layer import API_PREFIX, Gateway, StoreAuthority
from ensu.oauth import keys
from ensu.oauth.router import router as oauth_router
from ensu.operations import service as operations
from ensu.operations.router import router as operations_router
from ensu.webhooks import service as webhooks

logger = logging.getLogger("ensu.app")
SWITCH_INTERVAL_SECONDS = 0.0005


def create_app(settings: Settings | None = None, *, served: bool = False) -> FastAPI:
    """The ASGI application for ``settings`` (default: read from the environment);
    ``served``: as ``ensu serve`` runs it, with the availability probe and the operators'
    listener (metrics, health) beside the API (:func:`ensu.operations.service.start`),
    and the compliance clock (:class:`ensu.compliance.jobs.Scheduler`)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Production on development material is refused here too: settings made with
        # model_copy (tests, tools) skip the validators (R-GW-1, ensu.development).
        problem = settings.development_material()
        if problem is not None:
            raise RuntimeError(f"refusing to start: {problem}")
        # The loop shares the GIL with the drivers' threads (aiosqlite, the quota's
        # fallback): at the default 5 ms interval each hand-off to them could wait 5 ms
        # behind a busy loop; 0.5 ms bounds that wait (measured in bench/).
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        engine = db.make_engine(settings.database_url, timeout=settings.store_timeout_seconds)
        sessionmaker = db.make_sessionmaker(engine)
        async with sessionmaker() as session:
            app.state.catalogue = await catalogue.load(session=session)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.blob_store = documents.make_blob_store(
            settings=settings, sessionmaker=sessionmaker
        )
        app.state.document_reader = make_reader(engine, timeout=settings.store_timeout_seconds)
        app.state.authority = StoreAuthority(settings=settings, sessionmaker=sessionmaker)
        await app.state.authority.start()
        app.state.signing_key = keys.CurrentKey()
        app.state.journal = await Journal.open(settings=settings, sessionmaker=sessionmaker)
        runtime = await operations.start(
            state=app.state, settings=settings, sessionmaker=sessionmaker, served=served
        )
        jobs = await _start_jobs(app, settings, sessionmaker, served=served)
        # Everything loaded so far (modules, mappers, schemas) lives as long as the
        # process: out of the collector's sight, a full collection no longer scans it
        # (each one paused the loop about 120 ms, the p99 of the bench's bench).
        gc.freeze()
        try:
            yield
        finally:
            for job in reversed(jobs):
                await job.close()
            await runtime.close()
            await app.state.journal.close()
            await app.state.authority.close()
            app.state.document_reader.close()
            await engine.dispose()

    app = FastAPI(
        title="API ENSU Documents",
        version="1.0.0",
        description=(
            "Échange des documents fiscaux des usagers professionnels (DGFIP). Sous"
            " /ensudocuments/v1, toute réponse porte X-Correlation-ID, Date et les champs"
            " RateLimit-* ; les erreurs sont en application/problem+json (RFC 9457), un"
            " chemin inconnu compris (404 920404) ainsi qu'une méthode non servie (405"
            " 920405, avec Allow)."
        ),
        lifespan=lifespan,
        # The documentation pages with local assets (ensu.docs), off in production.
        docs_url=None,
        redoc_url=None,
        openapi_url=api_docs.openapi_url(settings),
        # No OpenTelemetry here: FastAPI would otherwise look for providers on every
        # request (about 10 µs of the hot path).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(operations_router)
    app.include_router(oauth_router)
    app.include_router(documents_router)
    app.include_router(journal_router)
    api_docs.mount(app, settings=settings)
    app.add_middleware(Gateway, routes=DIRECT_ROUTES)
    app.add_exception_handler(EnsuError, _problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _routing)  # type: ignore[arg-type]
    if not settings.is_sqlite:
        import psycopg  # noqa: F401, PLC0415 - loaded now, so that its errors are mapped below
    for failure in db.store_failures():
        app.add_exception_handler(failure, _store_unavailable)
    app.add_exception_handler(Exception, _internal)
    return app


class _Job(Protocol):
    async def close(self) -> None: ...


async def _start_jobs(
    app: FastAPI,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    served: bool,
) -> list[_Job]:
    """The served process's own background jobs, started; closed in reverse order."""
    jobs: list[_Job] = []
    # The compliance clock (R-SEC-2, R-SQ-5, R-SQ-6, R-TR-4): its due jobs, in the
    # served process only; two instances (or cron) never run a job's day twice.
    scheduler = None
    if served and settings.jobs_enabled:
        scheduler = Scheduler(
            sessionmaker=sessionmaker,
            settings=settings,
            interval=settings.jobs_interval_seconds,
        )
        await scheduler.start()
        jobs.append(scheduler)
    app.state.compliance_clock = scheduler
    if served:  # the webhook deliveries that are due, every second
        dispatcher = webhooks.Dispatcher(sessionmaker, settings)
        await dispatcher.start()
        jobs.append(dispatcher)
    return jobs


def create_served_app() -> FastAPI:
    """The app of ``ensu serve`` (its uvicorn factory): :func:`create_app` served, its
    process's logging set up (:mod:`ensu.logs`; each worker is a process of its own)."""
    settings = get_settings()
    logs.configure(log_format=settings.log_format_used)
    return create_app(settings, served=True)


def _correlation_id(request: Request) -> str | None:
    """The id the gateway echoes on this answer (``None`` outside the API prefix)."""
    echoed = request.scope.get(CORRELATION_KEY)
    return echoed if isinstance(echoed, str) else None


async def _problem(request: Request, error: EnsuError) -> Response:
    """The contract's problem document; the gateway echoes ``X-Correlation-ID`` and
    journals the call with this error's reason and code."""
    trace = trace_of(request.scope)
    trace.reason, trace.error_code = error.reason[:64], error.code
    return Response(
        error.body(correlation_id=_correlation_id(request)),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **error.headers()},
    )


async def _invalid(request: Request, error: RequestValidationError) -> Response:
    """FastAPI's own validation, where a route uses it: 920400 under the API prefix."""
    if not request.url.path.startswith(API_PREFIX):
        return await request_validation_exception_handler(request, error)
    erreurs = [(str(e["loc"][-1]), str(e["msg"])) for e in error.errors()]
    return await _problem(request, InvalidParameter(erreurs))


async def _routing(request: Request, error: HTTPException) -> Response:
    """The router's own refusals under the API prefix in the contract's form (RFC 9457):
    an unknown path 404 920404, a method the path does not serve 405 920405 with
    ``Allow``. Elsewhere (portal, OAuth) FastAPI's answer."""
    if not request.scope["path"].startswith(API_PREFIX) or error.status_code not in (404, 405):
        return await http_exception_handler(request, error)
    if error.status_code == 404:
        return await _problem(request, RouteNotFound(reason="unknown_path"))
    allow = (error.headers or {}).get("Allow")
    return await _problem(request, MethodNotAllowed(allow))


async def _store_unavailable(request: Request, error: Exception) -> Response:
    """The database failed or did not answer in time: 503 930004, the cause in the log
    only (R-GW-6: no SQL nor address to the caller)."""
    logger.warning("store unavailable on %s: %s", request.url.path, _first_line(error))
    return await _problem(request, StoreUnavailable(reason=f"store_{type(error).__name__}"))


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).partition(chr(10))[0][:200]}"


async def _internal(request: Request, error: Exception) -> Response:
    """Never a stack trace to the caller (R-GW-6); the log keeps it."""
    logger.exception("unhandled error on %s", request.url.path, exc_info=error)
    return await _problem(request, InternalError())
