"""``ensu serve``: the API over mutual TLS, served by uvicorn itself (R-GW-1).

In the embedded default (``ENSU_TLS_MODE=direct``) uvicorn terminates TLS 1.2+ and
requires a client certificate signed by the CA of ``settings.pki_dir_path``: a client
without one fails the handshake and no request reaches the app. The certificate reaches
the app through the ASGI ``tls`` extension (:mod:`ensu.edge.uvicorn_tls`).

With ``ENSU_TLS_MODE=proxy`` a proxy in front (nginx) terminates mutual TLS; the app
then serves plain HTTP on the loopback only, for that proxy.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from typing import Any

import typer
import uvicorn

from ensu import logs
from ensu.config import Settings, TLSMode, get_settings
from ensu.edge import uvicorn_tls
from ensu.operations.probe import target_url as probe_url
from ensu.pki.service import PkiLayout

APP_FACTORY = "ensu.app:create_served_app"
TLS_PROTOCOL = "ensu.edge.uvicorn_tls:HttpToolsTLSProtocol"
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
        "http": TLS_PROTOCOL,
        "ssl_certfile": str(layout.server_cert),
        "ssl_keyfile": str(layout.server_key),
        "ssl_ca_certs": str(layout.ca_cert),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_context_factory": uvicorn_tls.minimum_tls12_context,
    }


def _proxy_options(*, settings: Settings, host: str | None, port: int | None) -> dict[str, Any]:
    """Plain HTTP for the proxy: on the loopback, unless proxies are explicitly trusted."""
    bind = host or PROXY_UPSTREAM_HOST
    if not _is_loopback(bind) and not settings.trusted_proxies:
        raise ServeError(
            f"refusing plain HTTP on {bind}: in proxy mode the app listens on the loopback,"
            " or set ENSU_TRUSTED_PROXIES to the proxies allowed to reach it"
        )
    return {"host": bind, "port": port or PROXY_UPSTREAM_PORT, "http": "httptools"}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    settings = get_settings()
    try:
        options = server_options(settings=settings, host=host, port=port, workers=workers)
    except ServeError as error:
        typer.secho(f"Error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from error
    typer.echo(_banner(settings=settings, options=options))
    logs.configure(log_format=settings.log_format_used)
    if port is not None and settings.tls_mode is TLSMode.DIRECT and not settings.probe_url:
        # The probe calls the port actually served (the workers read the environment).
        os.environ["ENSU_PROBE_URL"] = probe_url(settings.model_copy(update={"listen_port": port}))
        get_settings.cache_clear()
    uvicorn.run(APP_FACTORY, factory=True, **options)


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
    example = authority if _is_loopback(host) else f"127.0.0.1:{options['port']}"
    return (
        f"Serving https://{authority} with mutual TLS (CA {pki / 'ca.pem'}). Try:\n"
        f"  curl --cacert {pki / 'ca.pem'} --cert {pki / 'consumer-a.pem'}"
        f" --key {pki / 'consumer-a.key'} https://{example}/ensudocuments/v1/etatSante"
        f"{operators}"
    )
