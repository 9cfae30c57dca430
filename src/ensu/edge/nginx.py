"""Render ``deploy/nginx/ensu.conf.template`` for proxy mode (R-GW-1, R-GW-2).

nginx terminates mutual TLS and forwards the verified certificate and the peer address
in headers it always overwrites; see the template's header comment for the contract
between nginx and the app.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ensu.edge import tls
from ensu.pki.service import PkiLayout

#: nginx's own default worker user (``nogroup`` is Debian's name for the group).
NOBODY = "nobody nogroup"
#: ``${NAME}`` placeholders; nginx's own ``$variables`` are left alone.
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / "nginx" / "ensu.conf.template"


@dataclass(frozen=True, slots=True)
class NginxSite:
    """What the template needs: where nginx listens, where the app is, the TLS files."""

    prefix: Path
    listen: str
    upstreams: Sequence[str]
    pki: PkiLayout
    blob_dir: Path
    worker_processes: int = 1
    daemon: bool = False
    #: ``user group`` of nginx's workers (when started as root); None: the owner of
    #: ``blob_dir`` (see :func:`owner_of`), so that the workers can read the files they
    #: send on the app's ``X-Accel-Redirect``.
    user: str | None = None


def render(site: NginxSite, *, template: Path = TEMPLATE) -> str:
    """The configuration text; ``upstreams`` are ``host:port`` or ``unix:/path`` items."""
    servers = "\n        ".join(f"server {upstream};" for upstream in site.upstreams)
    values = {
        "WORKER_PROCESSES": str(site.worker_processes),
        "PREFIX": str(site.prefix),
        "DAEMON": "on" if site.daemon else "off",
        "UPSTREAMS": servers,
        "LISTEN": site.listen,
        "SERVER_CERT": str(site.pki.server_cert),
        "SERVER_KEY": str(site.pki.server_key),
        "CLIENT_CA": str(site.pki.ca_cert),
        "CLIENT_CRL": str(site.pki.crl),
        "TLS_CIPHERS": tls.cipher_string(),
        "BLOB_DIR": str(site.blob_dir),
        "USER": site.user or owner_of(site.blob_dir),
    }
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template.read_text())


def owner_of(path: Path) -> str:
    """``user group`` owning ``path`` (or this process's, while it does not exist); nginx's
    default ``nobody`` when that is root (TLS-facing workers never run as root) or has no
    name (a numeric owner from a mounted volume)."""
    try:
        stat = path.stat()
        uid, gid = stat.st_uid, stat.st_gid
    except FileNotFoundError:
        uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        return NOBODY
    try:
        return f"{pwd.getpwuid(uid).pw_name} {grp.getgrgid(gid).gr_name}"
    except KeyError:
        return NOBODY


def write(site: NginxSite, *, template: Path = TEMPLATE) -> Path:
    """Write ``nginx.conf`` and the temp folders nginx needs under ``site.prefix``."""
    site.prefix.mkdir(parents=True, exist_ok=True)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (site.prefix / name).mkdir(exist_ok=True)
    path = site.prefix / "nginx.conf"
    path.write_text(render(site, template=template))
    return path


def nginx_binary() -> str | None:
    """The nginx executable, if installed (Debian puts it in /usr/sbin)."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
