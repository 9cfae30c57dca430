"""One server process of the bench: ``python -m bench.serve CONFIG.json``.

The bench starts each server through this module, pinned to the server core, on a
listening socket it bound itself and passes as a file descriptor (so no port race). The
kinds:

- ``ensu``: ``create_app`` with the options ``ensu serve`` uses (``server_options``),
  in proxy mode; SIGUSR1 writes the journal writer's counters to ``stats_file``;
- ``asgi``: C1, a bare ASGI callable answering the reference bytes;
- ``starlette``: C2, one Starlette route answering the reference bytes.

Every uvicorn arm runs with the same options (httptools, no proxy headers, no server
header, no access log), so the references differ from the subject by the app alone.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.settings import Quota, settings_for
from ensu.cli.serve import server_options

JSON = "application/json"
METADATA_ROUTE = "/ensudocuments/v1/documents/{typeIdentifiant}/{identifiant}"
#: The OAuth throttle (20/s per IP and per client) would turn the token arm into a measure
#: of 429s; the bench raises it out of reach and says so.
UNTHROTTLED = 1e12


def bare_asgi(body: bytes) -> ASGIApp:
    """C1: the least an ASGI app can do; answers ``body`` to every request."""
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", JSON.encode()), (b"content-length", b"%d" % len(body))],
    }
    message = {"type": "http.response.body", "body": body}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(start)
        await send(message)

    return app


def bare_starlette(body: bytes) -> ASGIApp:
    """C2: one Starlette route with the metadata route's path, answering ``body``."""

    async def document(request: Request) -> Response:
        return Response(body, media_type=JSON)

    return Starlette(routes=[Route(METADATA_ROUTE, document)])


def ensu_app(config: dict[str, Any]) -> tuple[ASGIApp, dict[str, Any]]:
    """The product's app and ``ensu serve``'s uvicorn options for ``config``."""
    quota: Quota = config["quota"]
    settings = settings_for(Path(config["var_dir"]), quota=quota, redis_url=config["redis_url"])
    # Imported here: the reference servers (C1, C2) hold nothing of the product.
    from ensu.app import create_app  # noqa: PLC0415
    from ensu.oauth.throttle import Throttle  # noqa: PLC0415

    app = create_app(settings)
    app.state.oauth_throttle = Throttle(rate=UNTHROTTLED, burst=UNTHROTTLED)
    stats_file = Path(config["stats_file"])

    def dump_stats(signum: int, frame: FrameType | None) -> None:
        journal = getattr(app.state, "journal", None)
        stats = asdict(journal.writer.stats) if journal is not None else {}
        partial = stats_file.with_suffix(".part")
        partial.write_text(json.dumps(stats))
        partial.replace(stats_file)

    signal.signal(signal.SIGUSR1, dump_stats)
    return app, server_options(settings=settings)


def build(config: dict[str, Any]) -> tuple[ASGIApp, dict[str, Any]]:
    """The app of ``config["kind"]`` and its uvicorn options."""
    if config["kind"] == "ensu":
        return ensu_app(config)
    body = Path(config["body_file"]).read_bytes()
    app = bare_asgi(body) if config["kind"] == "asgi" else bare_starlette(body)
    # The same options as the product's proxy mode (httptools, no proxy headers, ...).
    options = server_options(settings=settings_for(Path("."), quota="sqlite", redis_url=None))
    return app, options


def main(argv: list[str]) -> None:
    config: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    app, options = build(config)
    options = options | {"log_level": "warning", "access_log": False, "lifespan": "on"}
    listener = socket.socket(fileno=int(config["fd"]))
    server = uvicorn.Server(uvicorn.Config(app, **options))
    server.run(sockets=[listener])


if __name__ == "__main__":
    main(sys.argv)
