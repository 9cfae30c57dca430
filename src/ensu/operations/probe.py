"""The availability probe (R-SQ-2): a real mutual-TLS call through the whole chain.

Every ``ENSU_PROBE_INTERVAL_SECONDS`` the probe gets a token at ``/token`` (client
credentials with its certificate, kept until shortly before it expires) and calls
``GET /ensudocuments/v1/codesDocuments`` with its credentials: TLS handshake, certificate,
IP, ``ID_Teleservice``, token, rights, quota, journal, exactly as a consumer's call. The
outcome goes to the availability minutes (:class:`~ensu.operations.availability.Outcomes`):

- *ok*: 200;
- *failed*: no answer (connection refused, TLS failure, timeout) or a 5xx, unless a
  planned window is on (its minutes count as planned already: 930001, and
  ``temporarily_unavailable`` at ``/token``);
- anything else (a 4xx: the probe's own identity is refused) is logged as a probe
  misconfiguration and not counted either way.

Its identity: in the sandbox, made at start from the development PKI (certificate
``availability-probe.pem``, téléservice ``ensu-availability-probe`` /
``TS-ENSU-AVAILABILITY-PROBE``, one family, fictive data only); in production, the one
configured with ``ENSU_PROBE_CLIENT_ID``, ``ENSU_PROBE_ID_TELESERVICE``,
``ENSU_PROBE_CERT`` and ``ENSU_PROBE_KEY`` (a téléservice registered like any other).
The probe makes about 12 calls a minute (at the default 5 s), under the sandbox quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.background import StopSignal
from ensu.config import Environment, Settings, TLSMode
from ensu.consumers import service as consumers
from ensu.consumers.schemas import CertificateRef
from ensu.operations.availability import Outcomes
from ensu.pki import service as pki

logger = logging.getLogger("ensu.operations")

SANDBOX_NAME = "availability-probe"
SANDBOX_SIRET = "13000000000021"
SANDBOX_CLIENT_ID = "ensu-availability-probe"
SANDBOX_ID_TELESERVICE = "TS-ENSU-AVAILABILITY-PROBE"
ACTOR = "system:availability-probe"
TIMEOUT_SECONDS = 5.0
PATH = "/ensudocuments/v1/codesDocuments"


@dataclass(frozen=True, slots=True)
class Identity:
    client_id: str
    id_teleservice: str
    cert: Path
    key: Path
    ca: Path | None  # None: the system's trust store


class ProbeUnconfigured(RuntimeError):
    """The probe cannot run as configured (the message says what is missing)."""


def target_url(settings: Settings) -> str:
    """Where the probe calls: ``ENSU_PROBE_URL``, else the API's own listener (direct
    mode) or the public edge (proxy mode)."""
    if settings.probe_url:
        return settings.probe_url.rstrip("/")
    if settings.tls_mode is TLSMode.PROXY:
        return settings.issuer
    host = settings.listen_host
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard or host == "localhost":
        host = "127.0.0.1"  # the development server certificate names the loopback
    authority = f"[{host}]" if ":" in host else host
    return f"https://{authority}:{settings.listen_port}"


async def identity(
    *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> Identity:
    """The probe's identity (see the module docstring); sandbox: made when missing."""
    if settings.environment is Environment.PRODUCTION:
        return _configured(settings)
    layout = pki.PkiLayout(settings.pki_dir_path)
    cert = layout.client_cert(SANDBOX_NAME)
    if not cert.is_file():
        # Another worker may issue it at the same moment: then its pair is used.
        with contextlib.suppress(pki.PkiError):
            pki.issue_client(
                directory=settings.pki_dir_path,
                name=SANDBOX_NAME,
                organisation="Sonde de disponibilité ENSU",
            )
    ref = CertificateRef.from_pem(cert.read_bytes())
    try:
        async with sessionmaker() as session, session.begin():
            await _ensure_teleservice(session, ref)
    except IntegrityError:  # another instance made it meanwhile: read it again
        async with sessionmaker() as session, session.begin():
            await _ensure_teleservice(session, ref)
    return Identity(
        SANDBOX_CLIENT_ID,
        SANDBOX_ID_TELESERVICE,
        cert,
        layout.client_key(SANDBOX_NAME),
        layout.ca_cert,
    )


def _configured(settings: Settings) -> Identity:
    values = {
        "ENSU_PROBE_CLIENT_ID": settings.probe_client_id,
        "ENSU_PROBE_ID_TELESERVICE": settings.probe_id_teleservice,
        "ENSU_PROBE_CERT": settings.probe_cert,
        "ENSU_PROBE_KEY": settings.probe_key,
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ProbeUnconfigured(f"the production probe needs {', '.join(missing)}")
    assert settings.probe_client_id
    assert settings.probe_id_teleservice
    assert settings.probe_cert
    assert settings.probe_key
    return Identity(
        settings.probe_client_id,
        settings.probe_id_teleservice,
        settings.probe_cert,
        settings.probe_key,
        None,
    )


async def _ensure_teleservice(session: AsyncSession, ref: CertificateRef) -> None:
    existing = await consumers.get_by_client_id(session=session, client_id=SANDBOX_CLIENT_ID)
    if existing is None:
        await consumers.ensure_organisation(
            session=session, siret=SANDBOX_SIRET, name="Exploitation ENSU (sonde)", actor=ACTOR
        )
        await consumers.create_teleservice(
            session=session,
            organisation_siret=SANDBOX_SIRET,
            name="Sonde de disponibilité",
            environment=Environment.SANDBOX,
            certificates=[ref],
            families=("declaratives",),
            period_start=dt.date(2020, 1, 1),
            period_end=dt.date(2035, 12, 31),
            valid_from=dt.date(2020, 1, 1),
            client_id=SANDBOX_CLIENT_ID,
            id_teleservice=SANDBOX_ID_TELESERVICE,
            actor=ACTOR,
        )
    elif existing.thumbprints != {ref.thumbprint}:
        await consumers.replace_certificates(
            session=session,
            id_teleservice=SANDBOX_ID_TELESERVICE,
            certificates=[ref],
            actor=ACTOR,
        )


class Probe:
    """Calls the API every ``interval`` seconds and records the outcome."""

    def __init__(
        self,
        *,
        url: str,
        who: Identity,
        outcomes: Outcomes,
        interval: float,
        planned: Callable[[float], bool],
    ) -> None:
        self.url, self.who, self.outcomes, self.interval = url, who, outcomes, interval
        #: Whether a planned window is on at a time (its 503 are not failures).
        self.planned = planned
        self.up = False
        self.last_success: float | None = None
        self._token: tuple[str, float] | None = None
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopper = StopSignal()

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.who.ca)
        context.load_cert_chain(self.who.cert, self.who.key)
        return context

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.url, verify=self._context(), timeout=TIMEOUT_SECONDS
        )
        self._task = asyncio.create_task(self._loop(), name="availability-probe")

    async def close(self) -> None:
        self._stopper.stop()
        if self._task is not None:
            await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self) -> None:
        while not await self._stopper.sleep(self.interval):
            await self.once()

    async def once(self) -> bool | None:
        """One probe: True (ok), False (failed) or None (not counted); recorded."""
        at = time.time()
        try:
            status, code = await self._call(at)
        except httpx.HTTPError as exc:
            logger.warning("availability probe: no answer: %r", exc)
            outcome: bool | None = False
        else:
            outcome = _outcome(status, planned=self.planned(at))
            if outcome is None and status < 500:
                logger.error("availability probe refused (%s %s): check its identity", status, code)
        if outcome is not None:
            self.outcomes.observe_probe(at, ok=outcome)
            self.up = outcome
            if outcome:
                self.last_success = at
        return outcome

    async def _call(self, at: float) -> tuple[int, str | None]:
        assert self._client is not None
        token = self._token
        if token is None or token[1] <= at:
            answer = await self._client.post(
                "/token",
                data={"grant_type": "client_credentials", "client_id": self.who.client_id},
            )
            if answer.status_code != 200:
                return answer.status_code, answer.json().get("error") if _is_json(answer) else None
            body = answer.json()
            token = self._token = (body["access_token"], at + float(body["expires_in"]) - 30)
        answer = await self._client.get(
            PATH,
            headers={
                "Authorization": f"Bearer {token[0]}",
                "ID_Teleservice": self.who.id_teleservice,
                "X-Correlation-ID": str(uuid.uuid4()),
            },
        )
        if answer.status_code == 401:
            self._token = None
        code = answer.json().get("code") if _is_json(answer) else None
        return answer.status_code, code


def _is_json(answer: httpx.Response) -> bool:
    return "json" in answer.headers.get("content-type", "")


def _outcome(status: int, *, planned: bool) -> bool | None:
    if status == 200:
        return True
    if status >= 500:
        return None if planned else False
    return None
