"""One settings object for the whole product (prefix ``ENSU_``).

Every knob a deployment may turn lives here, with a default that makes ``make run`` work
on a fresh machine: SQLite and blobs under ``var/``, a development PKI under ``var/pki``,
uvicorn serving mutual TLS itself. In production the settings refuse to start with
development keys or default secrets (see :meth:`Settings.refuse_development_material`).
"""

from __future__ import annotations

import enum
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The repository's ``var/`` folder when run from a checkout; overridable with ENSU_VAR_DIR.
DEFAULT_VAR_DIR = Path("var")
DEVELOPMENT_SECRET = "development-only-secret"  # noqa: S105 - the value production refuses


class Environment(enum.StrEnum):
    """The two stages of the terms: sandbox (CGU BAS, fictive data) and production."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"


class TLSMode(enum.StrEnum):
    """Who terminates mutual TLS: uvicorn itself, or a trusted proxy in front (nginx)."""

    DIRECT = "direct"
    PROXY = "proxy"


class SmtpSecurity(enum.StrEnum):
    """How the SMTP connection is protected: none (a local relay), STARTTLS, implicit TLS."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class BlobBackend(enum.StrEnum):
    FILESYSTEM = "filesystem"
    DATABASE = "database"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Settings read from ``ENSU_*`` environment variables (and ``.env`` if present)."""

    model_config = SettingsConfigDict(env_prefix="ENSU_", env_file=".env", extra="ignore")

    environment: Environment = Environment.SANDBOX
    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = ""
    redis_url: str | None = None
    #: Where quota counters live (R-Q-1); None: redis if redis_url, else the database's kind.
    quota_backend: Literal["sqlite", "postgresql", "redis"] | None = None
    blob_backend: BlobBackend = BlobBackend.FILESYSTEM
    blob_dir: Path | None = None
    pki_dir: Path | None = None
    tls_mode: TLSMode = TLSMode.DIRECT
    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = (
        Field(default_factory=list)
    )
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8443, ge=1, le=65535)
    portal_port: int = Field(default=8080, ge=1, le=65535)
    #: The public base URL: the OAuth issuer; the audience is ``{public_url}/ensudocuments/v1``.
    public_url: str = "https://127.0.0.1:8443"
    token_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    import_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    #: R-TR-4: how long the journal keeps the records of the exchanges (calls), in days.
    journal_retention_days: int = Field(default=365, ge=1)
    #: R-TR-2: a C2SP tlog-witness ``add-checkpoint`` URL to which every new signed
    #: checkpoint is pushed, best effort (``ensu.audit.witness``); empty: none.
    journal_witness_url: str = ""
    #: The bound on each push to that witness, in seconds.
    journal_witness_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    pdf_font: Path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    #: Proxy mode, filesystem blobs: hand each PDF to nginx with ``X-Accel-Redirect``
    #: (its ``/_blobs/`` location, deploy/nginx/ensu.conf.template) instead of copying it.
    accel_redirect: bool = False
    #: Calls in the access chain at once per process; beyond, shed with 503 930005.
    max_in_flight: int = Field(default=256, ge=1)
    #: Bound on a database or Redis round trip on the hot path (connect, query), seconds:
    #: past it the call is refused with a 503 instead of hanging.
    store_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    #: Outgoing mail (ensu.mail): unset host, no mail is sent.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_username: str | None = None
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    mail_sender: str = "ensu-documents@localhost"
    #: The operators' listener (Prometheus metrics, /healthz, the availability figures),
    #: never the consumers' mutual-TLS one; started by ``ensu serve``; port 0: none.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    #: The availability probe (R-SQ-2): a real mutual-TLS call through the whole chain
    #: every ``probe_interval_seconds``, run by ``ensu serve``. In the sandbox it makes its
    #: own téléservice and certificate (dev PKI); in production it needs the four
    #: ``probe_*`` identity settings below, and does not run without them.
    probe_enabled: bool = True
    probe_interval_seconds: float = Field(default=5.0, ge=0.2, le=300)
    #: Where the probe calls; default: the API's own listener (the edge in proxy mode).
    probe_url: str | None = None
    probe_client_id: str | None = None
    probe_id_teleservice: str | None = None
    probe_cert: Path | None = None
    probe_key: Path | None = None
    #: ``/docs``, ``/redoc`` and ``/openapi.json`` (assets served locally, ``ensu.docs``);
    #: None: on in the sandbox, off in production.
    api_docs: bool | None = None
    #: The server's log lines (``ensu.logs``): ``json`` or ``console``; None: JSON in
    #: production, readable lines elsewhere.
    log_format: Literal["json", "console"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse_lists(cls, data: object) -> object:
        if isinstance(data, dict) and "trusted_proxies" in data:
            data["trusted_proxies"] = _split_csv(data["trusted_proxies"])
        return data

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'ensu.db'}"
        if self.blob_dir is None:
            self.blob_dir = self.var_dir / "blobs"
        if self.pki_dir is None:
            self.pki_dir = self.var_dir / "pki"
        return self

    @model_validator(mode="after")
    def _accel_needs_the_proxy(self) -> Settings:
        if self.accel_redirect and (
            self.tls_mode is not TLSMode.PROXY or self.blob_backend is not BlobBackend.FILESYSTEM
        ):
            raise ValueError(
                "ENSU_ACCEL_REDIRECT needs ENSU_TLS_MODE=proxy (nginx serves the file) and "
                "ENSU_BLOB_BACKEND=filesystem (a file for nginx to serve)"
            )
        return self

    @model_validator(mode="after")
    def refuse_development_material(self) -> Settings:
        """Production never runs on the development PKI or the default secret."""
        if self.environment is not Environment.PRODUCTION:
            return self
        if self.secret_key.get_secret_value() == DEVELOPMENT_SECRET:
            raise ValueError("ENSU_SECRET_KEY must be set to a real secret in production")
        if (self.pki_dir_path / "DEVELOPMENT").exists():
            raise ValueError(f"{self.pki_dir_path} holds the development PKI: not in production")
        return self

    @property
    def blob_dir_path(self) -> Path:
        assert self.blob_dir is not None  # set by _derive_paths
        return self.blob_dir

    @property
    def pki_dir_path(self) -> Path:
        assert self.pki_dir is not None  # set by _derive_paths
        return self.pki_dir

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def audience(self) -> str:
        return f"{self.issuer}/ensudocuments/v1"

    @property
    def api_docs_enabled(self) -> bool:
        if self.api_docs is None:
            return self.environment is not Environment.PRODUCTION
        return self.api_docs

    @property
    def log_format_used(self) -> Literal["json", "console"]:
        if self.log_format is None:
            return "json" if self.environment is Environment.PRODUCTION else "console"
        return self.log_format

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
