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

from ensu import development
from ensu.bounds import HeadLimits

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


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (where plain HTTP stays local)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    #: The portal's own listener (people's pages, ensu.portal): plain HTTP, no client
    #: certificate. On the loopback by default; elsewhere only behind a TLS proxy (its
    #: cookie is then ``Secure``). Port 0: ``ensu serve`` starts no portal.
    portal_host: str = "127.0.0.1"
    portal_port: int = Field(default=8080, ge=0, le=65535)
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
    #: Bounds on a request's head (ensu.bounds; R-GW-6, OWASP API4:2023), at the edge and
    #: in the gateway alike: path and query, header fields' bytes, their number.
    max_url_bytes: int = Field(default=8192, ge=512, le=65536)
    max_header_bytes: int = Field(default=32768, ge=4096, le=262144)
    max_header_count: int = Field(default=100, ge=16, le=1000)
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
    #: Development only: every message ensu.mail sends is also written to
    #: ``{var_dir}/outbox/`` (the portal's "Courriels envoyés" page reads it); with no
    #: SMTP host, the outbox is the delivery. Refused in production.
    mail_outbox: bool = False
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
    #: The compliance clock (ensu.compliance.jobs): run its due jobs inside ``ensu serve``
    #: every ``jobs_interval_seconds`` (cron can run ``ensu jobs run-due`` instead).
    jobs_enabled: bool = True
    jobs_interval_seconds: float = Field(default=60.0, ge=1, le=3600)
    #: Count working days with the Alsace-Moselle holidays (Good Friday, 26 December).
    calendar_alsace_moselle: bool = False
    #: Backups (R-SQ-3, ``ensu backup``): where they are written, never inside the var
    #: directory (default: ``backups/`` beside it), and how many ``--prune`` keeps.
    backup_dir: Path | None = None
    backup_keep: int = Field(default=14, ge=1)
    #: Webhooks (``ensu webhooks``): plain http:// receivers allowed (tests, a local
    #: relay), and the bound on each delivery's HTTP exchange, in seconds.
    webhook_allow_http: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    #: Security events (R-OPS-1, ``ensu.operations.detection``): who is e-mailed, how
    #: often ``ensu serve`` reads the journal, and the rules' thresholds.
    alert_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    detection_enabled: bool = True
    detection_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    #: Distinct subjects (SIREN/IDSP) asked by one téléservice within 5 minutes.
    detection_enumeration_subjects: int = Field(default=20, ge=2)
    #: Calls by one téléservice (or address) within 10 seconds.
    detection_burst_calls: int = Field(default=200, ge=2)
    #: Refusals of one téléservice (or address) within 5 minutes.
    detection_refusals: int = Field(default=20, ge=2)
    #: The usual hours of the calls, Paris time, ``HH-HH`` (a call served outside is an
    #: event); ``00-24``: none is unusual.
    detection_usual_hours: str = Field(default="06-22", pattern=r"^\d{2}-\d{2}$")
    #: ``/docs``, ``/redoc`` and ``/openapi.json`` (assets served locally, ``ensu.docs``);
    #: None: on in the sandbox, off in production.
    api_docs: bool | None = None
    #: The server's log lines (``ensu.logs``): ``json`` or ``console``; None: JSON in
    #: production, readable lines elsewhere.
    log_format: Literal["json", "console"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in ("trusted_proxies", "alert_emails"):
                if name in data:
                    data[name] = _split_csv(data[name])
        return data

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'ensu.db'}"
        if self.blob_dir is None:
            self.blob_dir = self.var_dir / "blobs"
        if self.pki_dir is None:
            self.pki_dir = self.var_dir / "pki"
        if self.backup_dir is None:
            self.backup_dir = self.var_dir.parent / "backups"
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
        """Production never runs on the development PKI, a weak secret (R-GW-1) or the
        development outbox."""
        problem = self.development_material()
        if problem is not None:
            raise ValueError(problem)
        if self.environment is Environment.PRODUCTION and self.mail_outbox:
            raise ValueError("ENSU_MAIL_OUTBOX is a development tool: not in production")
        return self

    def development_material(self) -> str | None:
        """Why these settings must not serve production, or None (always None outside
        production). Checked when the settings are read, and again when the app and
        ``ensu serve`` start (settings made with ``model_copy`` skip the validators):
        the default, empty or weak secret, the development PKI by its marker, and the
        development CA by its subject or fingerprints (:mod:`ensu.development`)."""
        if self.environment is not Environment.PRODUCTION:
            return None
        secret = self.secret_key.get_secret_value()
        if secret in ("", DEVELOPMENT_SECRET):
            return "ENSU_SECRET_KEY must be set to a real secret in production"
        bits = development.secret_bits(secret)
        if bits < development.MIN_SECRET_BITS:
            return (
                f"ENSU_SECRET_KEY carries about {bits:.0f} bits of entropy; production needs"
                f" {development.MIN_SECRET_BITS} (32 random bytes: `openssl rand -hex 32`)"
            )
        pki = self.pki_dir_path
        if (pki / "DEVELOPMENT").exists():
            return f"{pki} holds the development PKI: not in production"
        registry = development.REGISTRY_NAME
        return development.development_ca_reason(
            ca_file=pki / "ca.pem",
            server_file=pki / "server.pem",
            registries=(self.var_dir / registry, pki.parent / registry),
        )

    @property
    def blob_dir_path(self) -> Path:
        assert self.blob_dir is not None  # set by _derive_paths
        return self.blob_dir

    @property
    def pki_dir_path(self) -> Path:
        assert self.pki_dir is not None  # set by _derive_paths
        return self.pki_dir

    @property
    def outbox_dir(self) -> Path:
        """Where the development outbox keeps the messages (``ENSU_MAIL_OUTBOX``)."""
        return self.var_dir / "outbox"

    @property
    def detection_hours(self) -> tuple[int, int]:
        """``detection_usual_hours`` as (first hour, hour after the last), Paris time."""
        start, end = (int(part) for part in self.detection_usual_hours.split("-"))
        return start, end

    @property
    def backup_dir_path(self) -> Path:
        assert self.backup_dir is not None  # set by _derive_paths
        return self.backup_dir

    @property
    def head_limits(self) -> HeadLimits:
        return HeadLimits(
            url_bytes=self.max_url_bytes,
            header_bytes=self.max_header_bytes,
            header_count=self.max_header_count,
        )

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
