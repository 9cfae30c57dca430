"""Input and output of the consumers feature.

- :class:`TeleserviceIn` validates what an operator (CLI) or the habilitation workflow
  asks to create: SIRET, perimeter against the catalogue, CIDR networks, identifiers.
- :class:`TeleserviceView` is the frozen read model that the gateway and the token
  endpoint use: everything about one téléservice, read in one query.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ensu.certificates import thumbprint_s256
from ensu.config import Environment
from ensu.consumers.credentials import is_valid_email, is_valid_identifier, is_valid_siret
from ensu.consumers.models import AuthMethod, ContactRole, TeleserviceStatus
from ensu.documents.catalogue import CATALOGUE, CODES

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The families that the catalogue publishes (R-DATA-1).
FAMILIES = frozenset(entry.famille.value for entry in CATALOGUE)
#: Default quotas per minute (R-Q-1: 500 in production, 50 in the sandbox, CGU BAS §9.2).
DEFAULT_QUOTAS = {Environment.SANDBOX: 50, Environment.PRODUCTION: 500}
#: Loopback only: a restrictive default that suits development (R-GW-2).
DEFAULT_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
#: ``x5t#S256``: base64url of 32 bytes, no padding (RFC 8705 §3.1).
THUMBPRINT_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def is_thumbprint(value: str) -> bool:
    """True for a well-formed ``x5t#S256`` value."""
    return THUMBPRINT_PATTERN.fullmatch(value) is not None


@lru_cache(maxsize=16)
def codes_of_families(families: frozenset[str]) -> frozenset[str]:
    """The catalogue codes that belong to ``families``."""
    return frozenset(entry.code for entry in CATALOGUE if entry.famille.value in families)


@dataclass(frozen=True, slots=True)
class CertificateRef:
    """A client certificate as registered: its ``x5t#S256`` and its subject."""

    thumbprint: str
    subject: str

    @classmethod
    def from_pem(cls, pem: str | bytes) -> CertificateRef:
        """The first certificate in ``pem`` (other PEM blocks, such as a key, are ignored)."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ValueError("no PEM certificate found") from exc
        first = certificates[0]
        return cls(
            thumbprint=thumbprint_s256(first.public_bytes(Encoding.DER)),
            subject=first.subject.rfc4514_string(),
        )


class TeleserviceIn(BaseModel):
    """A téléservice to create; see ``service.create_teleservice`` for the meaning."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    organisation_siret: str
    name: str = Field(min_length=1, max_length=200)
    environment: Environment
    certificates: tuple[CertificateRef, ...] = Field(min_length=1)
    families: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    period_start: dt.date
    period_end: dt.date
    networks: tuple[Network, ...] = DEFAULT_NETWORKS
    auth_method: AuthMethod = AuthMethod.TLS_CLIENT_AUTH
    valid_from: dt.date
    valid_until: dt.date | None = None
    quota_per_minute: int | None = Field(default=None, gt=0, le=1_000_000)
    client_id: str | None = None
    id_teleservice: str | None = None
    mention_information: str | None = Field(default=None, max_length=4000)

    @field_validator("organisation_siret")
    @classmethod
    def _siret(cls, value: str) -> str:
        if not is_valid_siret(value):
            raise ValueError("a SIRET is 14 digits and passes the Luhn check")
        return value

    @field_validator("certificates")
    @classmethod
    def _thumbprints(cls, value: tuple[CertificateRef, ...]) -> tuple[CertificateRef, ...]:
        for certificate in value:
            if not is_thumbprint(certificate.thumbprint):
                raise ValueError(f"not an x5t#S256 thumbprint: {certificate.thumbprint!r}")
        return value

    @field_validator("families")
    @classmethod
    def _families(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - FAMILIES)
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
        return value

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - CODES)
        if unknown:
            raise ValueError(f"codes not in the catalogue: {unknown}")
        return value

    @field_validator("networks", mode="before")
    @classmethod
    def _strict_networks(cls, value: object) -> object:
        """``10.0.0.5/8`` is refused rather than silently widened to ``10.0.0.0/8``."""
        if isinstance(value, list | tuple):
            return tuple(ipaddress.ip_network(item, strict=True) for item in value)
        return value

    @field_validator("client_id", "id_teleservice")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_identifier(value):
            raise ValueError("3 to 64 characters among A-Z a-z 0-9 . _ -, not starting with . _ -")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TeleserviceIn:
        if not self.families and not self.codes:
            raise ValueError("the perimeter needs at least one family or one code")
        if self.period_start > self.period_end:
            raise ValueError("period_start is after period_end")
        if self.valid_until is not None and self.valid_from > self.valid_until:
            raise ValueError("valid_from is after valid_until")
        if not self.networks:
            raise ValueError("the IP allowlist needs at least one network")
        return self


@dataclass(frozen=True, slots=True)
class Contact:
    """A téléservice's contact for one role (R-HAB-1); whom notices go to (R-OPS-4)."""

    role: ContactRole
    name: str
    email: str

    def __post_init__(self) -> None:
        name = self.name.strip()
        if not name or len(name) > 200:
            raise ValueError("le nom du contact doit compter de 1 à 200 caractères")
        if not is_valid_email(self.email):
            raise ValueError(f"adresse électronique invalide : {self.email!r}")
        object.__setattr__(self, "name", name)


@dataclass(frozen=True, slots=True)
class OrganisationView:
    """A *partenaire conventionné*."""

    siret: str
    name: str


@dataclass(frozen=True, slots=True)
class CreatedTeleservice:
    """What creation returns: the secret is here once and nowhere else, ever."""

    client_id: str
    id_teleservice: str
    client_secret: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class TeleserviceView:
    """Everything the gateway and the token endpoint need about one téléservice.

    R-GW-1 (``thumbprints``), R-GW-2 (``networks``), R-GW-3 (``id_teleservice``),
    R-GW-4 (``client_id``, ``auth_method``, ``client_secret_hash``), R-GW-5 (status,
    validity, environment, ``allowed_codes``, authorised period), R-Q-1 (quota),
    R-CON-1 (``mention_information``).
    """

    id_teleservice: str
    client_id: str
    name: str
    organisation_siret: str
    organisation_name: str
    environment: Environment
    status: TeleserviceStatus
    valid_from: dt.date
    valid_until: dt.date | None
    families: frozenset[str]
    codes: frozenset[str]
    #: ``codes`` plus every code of ``families``: what R-GW-5 checks a code against.
    allowed_codes: frozenset[str]
    period_start: dt.date
    period_end: dt.date
    networks: tuple[Network, ...]
    thumbprints: frozenset[str]
    certificates: tuple[CertificateRef, ...]
    quota_per_minute: int
    auth_method: AuthMethod
    client_secret_hash: str | None = field(repr=False)
    mention_information: str
    updated_at: dt.datetime

    def active_on(self, day: dt.date) -> bool:
        """Active status and ``day`` inside the validity dates (R-GW-5: valid today)."""
        if self.status is not TeleserviceStatus.ACTIVE or day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until

    def allows_address(self, address: str) -> bool:
        """True when ``address`` is inside one of the allowed networks (R-GW-2)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
        return any(ip in network for network in self.networks)

    def covers_code(self, code: str) -> bool:
        """The document code is in the perimeter (R-GW-5, R-DATA-5)."""
        return code in self.allowed_codes

    def covers_period(self, start: dt.date, end: dt.date) -> bool:
        """The period ``start``..``end`` lies inside the authorised period (R-GW-5)."""
        return self.period_start <= start and end <= self.period_end
