"""One logging set-up for the server (structlog over the standard library).

``ensu serve`` calls :func:`configure` in every process it runs: every logger of the
product (``ensu.*``), of uvicorn (``uvicorn.error``) and of the libraries goes through
one handler on standard error, rendered by structlog:

- ``json`` (the default in production, ``ENSU_LOG_FORMAT``): one JSON object a line,
  ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event`` and the line's fields;
- ``console`` (the default elsewhere): the same fields as readable ``key=value`` text.

Each request gets one line, ``event="request"``, ``logger="ensu.access"``, written by
the gateway when its answer is complete (:class:`RequestLine`), through a structlog
logger of its own that renders the same way but skips the standard library's records
(it is on the hot path): ``method``, ``path``
(never the query string), ``status``, ``code`` (the contract's error code, or OAuth's
``error``), ``duration_ms``, ``correlation_id`` and ``teleservice`` when known, ``peer``.
It replaces uvicorn's access log, which is turned off (:data:`UVICORN_OPTIONS`): that one
knew neither the correlation id nor the téléservice. No header, query string, body,
token, secret or certificate is ever put on a line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson
import structlog
from starlette.types import Message, Scope, Send

ACCESS_LOGGER = "ensu.access"
#: What ``ensu serve`` gives uvicorn: no logging set-up of its own, no access log.
UVICORN_OPTIONS: dict[str, Any] = {"log_config": None, "access_log": False}
LogFormat = Literal["json", "console"]
#: A call's correlation id and téléservice from its scope (the gateway's keys).
Describe = Callable[[Scope], tuple[str | None, str | None]]

_PROBLEM = b"application/problem+json"
#: The request lines' own structlog logger once :func:`configure` ran (None: no lines).
#: Straight to the stream, without the standard library's records and handler: a line
#: per request is on the hot path (about 60 µs through ``logging``, a few here).
_access: Any = None


def _json(value: object, **_: object) -> str:
    return orjson.dumps(value, default=str).decode()


def configure(*, log_format: LogFormat, level: int = logging.INFO) -> None:
    """Route every standard logger through structlog's ``log_format`` renderer."""
    renderer: structlog.types.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    final: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _drop_terminal_copies,
    ]
    if log_format == "json":
        final.append(structlog.processors.format_exc_info)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[*final, renderer])
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        named = logging.getLogger(name)
        named.handlers, named.propagate = [], True
    # uvicorn's access log is replaced by the request line: nothing of it reaches a
    # handler (its protocols then skip formatting it).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers, uvicorn_access.propagate = [], False
    structlog.configure(
        processors=[*shared[:2], structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    global _access  # noqa: PLW0603 - the process's one set-up
    _access = None
    if level <= logging.INFO:
        _access = structlog.wrap_logger(
            structlog.WriteLogger(sys.stderr),
            processors=[
                structlog.processors.add_log_level,
                _access_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            cache_logger_on_first_use=True,
        )


def access_enabled() -> bool:
    """Whether request lines are written (after :func:`configure`, at level INFO)."""
    return _access is not None


def _access_logger_name(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    event["logger"] = ACCESS_LOGGER
    return event


def _drop_terminal_copies(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """uvicorn's ``color_message`` (its lines again, with terminal colours)."""
    event.pop("color_message", None)
    return event


class RequestLine:
    """The request line of one call: watches its answer and writes the line just before
    the answer's last bytes go to the server (so that a client that has its answer finds
    the line written), or at the end of the call when no answer was completed."""

    __slots__ = ("code", "describe", "scope", "started", "status", "wants_code", "written")

    def __init__(self, scope: Scope, describe: Describe) -> None:
        self.scope = scope
        #: The call's correlation id and téléservice, as the gateway knows them by then.
        self.describe = describe
        self.started = time.perf_counter()
        self.status = 0
        self.code: str | None = None
        self.wants_code = False
        self.written = False

    def watch(self, send: Send) -> Send:
        async def send_watched(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                self.status = message["status"]
                if self.status >= 400:
                    headers: list[tuple[bytes, bytes]] = message.get("headers", [])
                    self.wants_code = any(
                        name == b"content-type" and (value == _PROBLEM or b"json" in value)
                        for name, value in headers
                    )
            elif kind == "http.response.body":
                if self.wants_code:
                    self.wants_code = False
                    self.code = _error_code(message.get("body", b""))
                if not message.get("more_body", False):
                    self.emit()
            await send(message)

        return send_watched

    def emit(self) -> None:
        """Write the line, once."""
        if self.written:
            return
        self.written = True
        correlation_id, teleservice = self.describe(self.scope)
        client = self.scope.get("client")
        _access.info(
            "request",
            method=self.scope["method"],
            path=self.scope["path"],
            status=self.status,
            code=self.code,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 2),
            correlation_id=correlation_id,
            teleservice=teleservice,
            peer=client[0] if client else None,
        )


def _error_code(body: bytes) -> str | None:
    """The contract's ``code`` of a problem document, or OAuth's ``error`` (RFC 6749)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, Mapping):
        return None
    code = document.get("code", document.get("error"))
    return str(code) if code is not None else None
