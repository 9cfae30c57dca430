"""The settings of the bench's API servers, in a module of their own.

The server processes import this, not :mod:`bench.world` (which builds the fixture with
the PDF writer and the PKI tooling): a server holds in memory only what ``ensu serve``
would, so that the RSS column compares like with like.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from ensu.config import BlobBackend, Environment, Settings, TLSMode

#: The address the TLS proxy would forward (X-Forwarded-For), inside the allowlist.
CLIENT_IP = "127.0.0.1"
TRUSTED_PROXY = "127.0.0.1/32"

Quota = Literal["sqlite", "redis"]


def settings_for(var_dir: Path, *, quota: Quota, redis_url: str | None) -> Settings:
    """Proxy-mode settings, every value explicit so no ``ENSU_*`` of the shell leaks in."""
    return Settings(
        environment=Environment.SANDBOX,
        var_dir=var_dir,
        database_url=f"sqlite+aiosqlite:///{var_dir / 'ensu.db'}",
        blob_backend=BlobBackend.FILESYSTEM,
        blob_dir=var_dir / "blobs",
        pki_dir=var_dir / "pki",
        tls_mode=TLSMode.PROXY,
        trusted_proxies=[ipaddress.ip_network(TRUSTED_PROXY)],
        quota_backend=quota,
        redis_url=redis_url,
        token_ttl_seconds=3600,
        # As deployed behind nginx: the content route hands the file to nginx.
        accel_redirect=True,
    )
