"""The operators' listener: metrics, health and the availability figures, off the API.

Served on ``ENSU_METRICS_HOST:ENSU_METRICS_PORT`` (127.0.0.1:9464 by default), plain
HTTP, **never** on the consumers' mutual-TLS listener:

- ``GET /metrics``: the Prometheus text format (:mod:`ensu.operations.metrics`);
- ``GET /healthz``: 200 ``{"status": "ready"}`` when the journal accepts records, no
  integrity stop is open and the database answers within ``ENSU_STORE_TIMEOUT_SECONDS``;
  503 ``{"status": "not_ready", ...}`` otherwise, for a load balancer. A maintenance
  window does not make an instance unready (it answers 503 930001 itself);
- ``GET /availability?from=YYYY-MM-DD&to=YYYY-MM-DD``: the availability report as JSON
  (R-SQ-2), and ``GET /availability.svg`` with the same query, the chart.

Staff authentication does not exist yet: until it does, the availability figures are
protected by where they are served, this listener, which binds the loopback unless the
operator chooses otherwise (its network must then be the operators' own). The portal
will embed the SVG from here.

It is a deliberately small HTTP/1.1 responder on asyncio streams (one request per
connection, GET only): a second uvicorn server in the same process would install its own
signal handlers beside the API's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from ensu.operations import availability, metrics
from ensu.operations.maintenance import PARIS

logger = logging.getLogger("ensu.operations")

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_SECONDS = 5.0
#: The report's default span when the query gives none: the last 7 days, today included.
DEFAULT_DAYS = 7

Reply = tuple[int, str, bytes]


class Listener:
    """The listener of one app (its state: journal, engine, watches)."""

    def __init__(self, state: Any, *, host: str, port: int) -> None:
        self.state, self.host, self.port = state, host, port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(metrics.StateCollector(state))
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; a port already taken (another worker has it) is logged, not fatal."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            logger.warning("metrics listener not started on %s:%s: %s", self.host, self.port, exc)
            return
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("metrics and health on http://%s:%s", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            reply = await self._answer(head)
            status, content_type, body = reply
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> Reply:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or len(head) > MAX_REQUEST_BYTES:
            return 400, "text/plain", b"bad request\n"
        method, target, _version = parts
        if method != "GET":
            return 405, "text/plain", b"GET only\n"
        url = urlsplit(target)
        route = ROUTES.get(url.path)
        if route is None:
            return 404, "text/plain", b"not found\n"
        try:
            reply: Reply = await route(self, parse_qs(url.query))
        except Exception:  # never a stack trace to the client; the log keeps it
            logger.exception("operations listener: %s failed", url.path)
            return 500, "text/plain", b"internal error\n"
        return reply

    async def metrics(self, _query: dict[str, list[str]]) -> Reply:
        body = generate_latest(metrics.REGISTRY) + generate_latest(self.registry)
        return 200, CONTENT_TYPE_LATEST, body

    async def healthz(self, _query: dict[str, list[str]]) -> Reply:
        checks = {
            "journal_writable": self._journal_writable(),
            "integrity": not self.state.journal.stopped,
            "database": await self._database_answers(),
        }
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return (200 if ready else 503), "application/json", orjson.dumps(body)

    def _journal_writable(self) -> bool:
        return bool(self.state.journal.writer.available)

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(self.state.settings.store_timeout_seconds):
                async with self.state.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception:  # any failure is "not ready"; the reason is in the API's logs
            return False
        return True

    async def availability_json(self, query: dict[str, list[str]]) -> Reply:
        parsed = _period(query)
        if isinstance(parsed, str):
            return 400, "application/json", orjson.dumps({"error": parsed})
        found = await self._report(*parsed)
        return 200, "application/json", orjson.dumps(found.as_dict())

    async def availability_svg(self, query: dict[str, list[str]]) -> Reply:
        parsed = _period(query)
        if isinstance(parsed, str):
            return 400, "text/plain", parsed.encode()
        found = await self._report(*parsed)
        return 200, "image/svg+xml", availability.svg(found).encode()

    async def _report(self, start: dt.date, end: dt.date) -> availability.Report:
        await self.state.outcomes.flush()  # this process's last seconds included
        async with self.state.sessionmaker() as session:
            return await availability.report(session=session, start=start, end=end)


def _period(query: dict[str, list[str]]) -> tuple[dt.date, dt.date] | str:
    today = dt.datetime.now(PARIS).date()
    try:
        end = dt.date.fromisoformat(query["to"][0]) if "to" in query else today
        start = (
            dt.date.fromisoformat(query["from"][0])
            if "from" in query
            else end - dt.timedelta(days=DEFAULT_DAYS - 1)
        )
    except ValueError:
        return "from and to are dates, YYYY-MM-DD"
    if end < start:
        return "the period ends before it starts"
    if (end - start).days > 366:
        return "at most 366 days per report"
    return start, end


Route = Callable[[Listener, dict[str, list[str]]], Any]
ROUTES: dict[str, Route] = {
    "/metrics": Listener.metrics,
    "/healthz": Listener.healthz,
    "/availability": Listener.availability_json,
    "/availability.svg": Listener.availability_svg,
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
