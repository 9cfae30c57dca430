"""``ensu edge nginx-config``: nginx in front of the app in proxy mode (R-GW-1, R-GW-2).

Renders ``deploy/nginx/ensu.conf.template`` (:mod:`ensu.edge.nginx`) into
``PREFIX/nginx.conf``, with one ``server`` line per ``--upstream``: one instance for a
single host, several to scale out (see ``deploy/README.md``). nginx terminates mutual TLS
with the server certificate and the client CA of ``ENSU_PKI_DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ensu.cli.serve import PROXY_UPSTREAM_HOST, PROXY_UPSTREAM_PORT
from ensu.config import get_settings
from ensu.edge import nginx
from ensu.pki.service import PkiLayout

app = typer.Typer(
    help="The TLS edge of proxy mode (nginx in front of the app).", no_args_is_help=True
)

DEFAULT_UPSTREAM = f"{PROXY_UPSTREAM_HOST}:{PROXY_UPSTREAM_PORT}"


@app.command("nginx-config")
def nginx_config(  # noqa: PLR0917 - typer options, passed by name by the CLI
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="An app instance, host:port or unix:/path (repeat it, one per instance;"
            f" default {DEFAULT_UPSTREAM})."
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="Where nginx listens (default: ENSU_LISTEN_HOST:ENSU_LISTEN_PORT)."),
    ] = None,
    prefix: Annotated[
        Path,
        typer.Option(help="nginx's folder: nginx.conf, pid, error log, temporary folders."),
    ] = Path("var/nginx"),
    worker_processes: Annotated[int, typer.Option(min=1, help="nginx worker processes.")] = 1,
    daemon: Annotated[bool, typer.Option(help="Let nginx detach (off: run under systemd).")] = (
        False
    ),
    user: Annotated[
        str | None,
        typer.Option(
            help="'user group' of nginx's workers, who must read the blobs for"
            " ENSU_ACCEL_REDIRECT (default: the blob directory's owner, never root)."
        ),
    ] = None,
) -> None:
    """Write PREFIX/nginx.conf for nginx in front of the app (ENSU_TLS_MODE=proxy)."""
    settings = get_settings()
    layout = PkiLayout(settings.pki_dir_path)
    missing = layout.missing_server_material()
    if missing:
        names = ", ".join(str(path) for path in missing)
        typer.secho(f"Error: no server certificate or client CA ({names})", fg="red", err=True)
        raise typer.Exit(1)
    if not layout.crl.is_file():  # R-GW-1: nginx's ssl_crl, never left out
        typer.secho(
            f"Error: no CRL {layout.crl}: put the CA's CRL there (`ensu pki init` writes"
            " the development CA's)",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    site = nginx.NginxSite(
        prefix=prefix.resolve(),
        listen=listen or f"{settings.listen_host}:{settings.listen_port}",
        upstreams=upstream or [DEFAULT_UPSTREAM],
        pki=PkiLayout(settings.pki_dir_path.resolve()),
        blob_dir=settings.blob_dir_path.resolve(),
        worker_processes=worker_processes,
        daemon=daemon,
        user=user,
    )
    path = nginx.write(site)
    typer.echo(f"{path} ({len(site.upstreams)} upstream(s)); run:")
    typer.echo(f"  nginx -p {site.prefix} -e {site.prefix / 'error.log'} -c {path}")
