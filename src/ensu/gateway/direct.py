"""Routes the gateway serves itself, after the chain, without the framework.

A call that passed the access chain spent, before this module, as much CPU in FastAPI's
routing, request object and dependency solving as in all of our own checks. The data
routes (the documents feature's) are therefore written once as *handlers*: plain async
functions from a :class:`Call` to a :class:`Reply`, with no ``Request``. The gateway
matches the path against :class:`DirectRoutes` and awaits the handler itself; the
FastAPI routes of the same paths call the same handlers (thin adapters) and exist so
that the OpenAPI document describes them, and serve them when the gateway is built
without direct routes (``Gateway(app)``).
One implementation, two entries; the contract tests go through the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from ensu.gateway.caller import Caller, Trace

_EMPTY_QUERY = QueryParams(b"")


@dataclass(slots=True)
class Call:
    """What a handler reads: the app's state, the caller, the path's parameters, the query."""

    state: Any
    caller: Caller
    trace: Trace
    path_params: Mapping[str, str]
    query_string: bytes

    @property
    def query_params(self) -> QueryParams:
        return QueryParams(self.query_string) if self.query_string else _EMPTY_QUERY


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: status, media type, body and extra headers."""

    body: bytes
    media_type: str
    status: int = 200
    headers: Sequence[tuple[str, str]] = ()

    def start_message(self) -> dict[str, Any]:
        headers = [
            (b"content-type", self.media_type.encode("latin-1")),
            (b"content-length", b"%d" % len(self.body)),
        ]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        return {"type": "http.response.start", "status": self.status, "headers": headers}


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class DirectRoute:
    method: str
    template: str  # "/prefix/documents/{typeIdentifiant}/{identifiant}"
    handler: Handler


@dataclass
class DirectRoutes:
    """Exact templates compiled to one pattern each; ``{name}`` matches one segment,
    as in Starlette (the path is already percent-decoded by the server)."""

    routes: Sequence[DirectRoute]
    _compiled: list[tuple[str, re.Pattern[str], Handler]] = field(init=False)

    def __post_init__(self) -> None:
        self._compiled = [
            (route.method, _pattern(route.template), route.handler) for route in self.routes
        ]

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for wanted, pattern, handler in self._compiled:
            if wanted == method:
                found = pattern.fullmatch(path)
                if found is not None:
                    return handler, found.groupdict()
        return None


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)
