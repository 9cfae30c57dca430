"""``ensu serve``: the API over mutual TLS, served by uvicorn itself (R-GW-1).

In the embedded default (``ENSU_TLS_MODE=direct``) uvicorn terminates TLS 1.2+ and
requires a client certificate signed by the CA of ``settings.pki_dir_path``: a client
without one fails the handshake and no request reaches the app. The certificate reaches
the app through the ASGI ``tls`` extension (:mod:`ensu.edge.uvicorn_tls`).

With ``ENSU_TLS_MODE=proxy`` a proxy in front (nginx) terminates mutual TLS; the app
then serves plain HTTP on the loopback only, for that proxy.

Beside the API, in the same process and event loop, ``ensu serve`` runs the portal
(:mod:`ensu.portal`, its own ASGI app) on its own listener, ``ENSU_PORTAL_HOST``:
``ENSU_PORTAL_PORT`` (plain HTTP, no client certificate; port 0: no portal). The API's
server owns the signals: one Ctrl-C stops the API, then the portal. With ``--workers``
above 1 the portal is not started here: run ``ensu portal serve`` beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
from collections.abc import Iterator
from types import FrameType
from typing import Any

import typer
import uvicorn
from pydantic import ValidationError
from uvicorn._compat import asyncio_run
from uvicorn.server import HANDLED_SIGNALS

from ensu import logs
from ensu.cli.staff import PORTAL_FACTORY, portal_options
from ensu.config import Settings, TLSMode, get_settings, is_loopback
from ensu.edge import uvicorn_tls
from ensu.operations.probe import target_url as probe_url
from ensu.pki.service import PkiLayout

APP_FACTORY = "ensu.app:create_served_app"
#: Where the app listens for the proxy in ``proxy`` mode (the proxy owns listen_port).
PROXY_UPSTREAM_HOST = "127.0.0.1"
PROXY_UPSTREAM_PORT = 8001


class ServeError(Exception):
    """The server cannot start as configured; the message tells the user why."""


def server_options(
    *,
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run``, everything but the app.

    Shared by ``ensu serve`` and the tests, so the tests run the server users run.
    """
    common: dict[str, Any] = {
        "workers": workers,
        "proxy_headers": False,  # the client address is the TCP peer, never a header
        "server_header": False,  # no product banner (R-GW-6: no internals)
        "date_header": False,  # the app sends Date itself (ensu.gateway.stamps): one only
        "ws": "none",  # the API has no WebSocket: refuse upgrades outright
        **logs.UVICORN_OPTIONS,  # ensu.logs: one set-up, the app's request line
    }
    if settings.tls_mode is TLSMode.PROXY:
        return common | _proxy_options(settings=settings, host=host, port=port)
    layout = PkiLayout(settings.pki_dir_path)
    missing = layout.missing_server_material()
    if missing:
        names = ", ".join(str(path) for path in missing)
        raise ServeError(f"no PKI to serve mutual TLS (missing: {names}): run `ensu pki init`")
    return common | {
        "host": host or settings.listen_host,
        "port": port or settings.listen_port,
        "http": uvicorn_tls.BoundedProtocol(settings.head_limits),
        "ssl_certfile": str(layout.server_cert),
        "ssl_keyfile": str(layout.server_key),
        "ssl_ca_certs": str(layout.ca_cert),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_context_factory": uvicorn_tls.minimum_tls12_context,
    }


def _proxy_options(*, settings: Settings, host: str | None, port: int | None) -> dict[str, Any]:
    """Plain HTTP for the proxy: on the loopback, unless proxies are explicitly trusted."""
    bind = host or PROXY_UPSTREAM_HOST
    if not is_loopback(bind) and not settings.trusted_proxies:
        raise ServeError(
            f"refusing plain HTTP on {bind}: in proxy mode the app listens on the loopback,"
            " or set ENSU_TRUSTED_PROXIES to the proxies allowed to reach it"
        )
    return {
        "host": bind,
        "port": port or PROXY_UPSTREAM_PORT,
        # The same bounded head as in direct mode (plain HTTP: no ``tls`` extension).
        "http": uvicorn_tls.BoundedProtocol(settings.head_limits),
    }


def serve(
    host: str | None = typer.Option(
        None, help="Address to listen on (default: ENSU_LISTEN_HOST, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None,
        min=1,
        max=65535,
        help="Port to listen on (default: ENSU_LISTEN_PORT, 8443; 8001 in proxy mode).",
    ),
    workers: int = typer.Option(1, min=1, help="Number of worker processes."),
) -> None:
    """Serve the API with mutual TLS (a client certificate from the PKI is required)."""
    try:
        settings = get_settings()  # production on development material is refused here
        options = server_options(settings=settings, host=host, port=port, workers=workers)
    except (ServeError, ValidationError) as error:
        typer.secho(f"Error: {_message(error)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from error
    typer.echo(_banner(settings=settings, options=options))
    logs.configure(log_format=settings.log_format_used)
    if port is not None and settings.tls_mode is TLSMode.DIRECT and not settings.probe_url:
        # The probe calls the port actually served (the workers read the environment).
        os.environ["ENSU_PROBE_URL"] = probe_url(settings.model_copy(update={"listen_port": port}))
        get_settings.cache_clear()
    if workers == 1 and settings.portal_port:
        _serve_with_portal(options, settings)
    else:
        uvicorn.run(APP_FACTORY, factory=True, **options)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to the API's server beside it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PairedServer(uvicorn.Server):
    """The API's server, owner of the signals: Ctrl-C (or SIGTERM) stops it and the
    portal at once, a second Ctrl-C forces both. Unlike uvicorn's own, it does not
    raise the signal again once stopped: asyncio's runner would then cancel the portal
    in the middle of its shutdown."""

    def __init__(self, config: uvicorn.Config, portal: uvicorn.Server) -> None:
        super().__init__(config)
        self.portal = portal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.portal.handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    """The portal's listening socket, bound before anything starts: a port taken is a
    clear error here, not a ``SystemExit`` inside a running loop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        typer.secho(f"Error: the portal cannot listen on {host}:{port}: {error}", err=True)
        raise typer.Exit(1) from error
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _serve_with_portal(options: dict[str, Any], settings: Settings) -> None:
    """The API and the portal in one loop; the API's server handles Ctrl-C and the
    portal stops when the API has."""
    portal = portal_options(settings)
    sock = _bind(portal["host"], portal["port"])
    api_config = uvicorn.Config(APP_FACTORY, factory=True, **options)
    portal_config = uvicorn.Config(PORTAL_FACTORY, factory=True, **portal)
    portal_server = EmbeddedServer(portal_config)
    api_server = PairedServer(api_config, portal_server)

    async def both() -> None:
        portal_task = asyncio.create_task(portal_server.serve(sockets=[sock]))
        try:
            await api_server.serve()
        finally:  # the API stopped (a signal, or it could not start): the portal too
            portal_server.should_exit = True
            await portal_task

    asyncio_run(both(), loop_factory=api_config.get_loop_factory())  # uvicorn.run's loop


def _message(error: Exception) -> str:
    """The reasons only: a ValidationError's text also quotes the input."""
    if isinstance(error, ValidationError):
        return "; ".join(
            str(detail["msg"]).removeprefix("Value error, ") for detail in error.errors()
        )
    return str(error)


def _banner(*, settings: Settings, options: dict[str, Any]) -> str:
    host = options["host"]
    authority = f"[{host}]:{options['port']}" if ":" in host else f"{host}:{options['port']}"
    if settings.tls_mode is TLSMode.PROXY:
        return f"Serving plain HTTP for the TLS proxy on http://{authority}"
    pki = settings.pki_dir_path
    operators = ""
    if settings.metrics_port:
        where = f"{settings.metrics_host}:{settings.metrics_port}"
        operators = f"\nOperators (metrics, health, availability): http://{where}/metrics, /healthz"
    # The server certificate names the loopback only: an example must use it.
    example = authority if is_loopback(host) else f"127.0.0.1:{options['port']}"
    if settings.portal_port and options["workers"] == 1:
        operators += (
            f"\nPortal (people's pages, no client certificate): "
            f"http://{settings.portal_host}:{settings.portal_port}/"
        )
    return (
        f"Serving https://{authority} with mutual TLS (CA {pki / 'ca.pem'}). Try:\n"
        f"  curl --cacert {pki / 'ca.pem'} --cert {pki / 'consumer-a.pem'}"
        f" --key {pki / 'consumer-a.key'} https://{example}/ensudocuments/v1/etatSante"
        f"{operators}"
    )
