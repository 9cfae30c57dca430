"""The access chain over real connections: a prepared ``var/``, real servers, real nginx.

One :class:`Stack` per test module (module-scoped fixtures, built with
``tmp_path_factory``): a migrated SQLite database with documents whose blobs are real
PDFs, the development PKI, three téléservices, and the ways in that a consumer (or an
attacker) has; the ``route`` fixture runs a test over each of the first two:

- ``direct``: uvicorn terminating mutual TLS itself (``ENSU_TLS_MODE=direct``);
- ``nginx``: nginx terminating mutual TLS in front of the app in proxy mode, the app
  trusting nginx's address (127.0.0.1);
- ``upstream``: the plain-HTTP app behind nginx, reached without nginx (it trusts the
  peer, so forged proxy headers are believed: the control that proves the other tests
  could fail);
- ``untrusted``: an app in proxy mode whose trusted proxy is another address
  (127.0.0.2), reached directly from 127.0.0.1.

nginx runs as a subprocess in its own process group, is stopped at teardown, and its
``error.log`` is attached to the report of any test that fails while it runs. Without
nginx the ``nginx`` cases skip, or fail under CI=true.
"""

from __future__ import annotations

import base64
import datetime as dt
import grp
import ipaddress
import os
import pwd
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import anyio
import httpx
import orjson
import pytest
import uvicorn
from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.app import create_app
from ensu.audit.records import CallRecord
from ensu.cli.serve import server_options
from ensu.config import BlobBackend, Environment, Settings, TLSMode
from ensu.consumers import service as consumers
from ensu.consumers.schemas import DEFAULT_QUOTAS, FAMILIES, CertificateRef
from ensu.documents import service as documents
from ensu.documents.identifiers import new_idensua
from ensu.documents.storage import digest
from ensu.edge import nginx
from ensu.edge.testing import serving
from ensu.pki import service as pki
from tests.conftest import IN_CI
from tests.support.journal import journal_records
from tests.support.quota import TEST_GRANT

#: Bound a broken start or stop only; a healthy nginx is up and down in milliseconds.
NGINX_START_TIMEOUT = 30.0
NGINX_STOP_TIMEOUT = 15.0
NGINX_BIND_ATTEMPTS = 3
SIRET = "13000000000005"  # Luhn-valid, fictive
SIREN = "732829320"
OTHER_SIREN = "552100554"
#: nginx's own address towards the app, and an address that is not it.
NGINX_PEER = "127.0.0.1/32"
OTHER_PROXY = "127.0.0.2/32"
#: TEST-NET-1 (RFC 5737): a configuration value only, no traffic ever goes there.
FAR_NETWORK = "192.0.2.0/24"
FAR_ADDRESS = "192.0.2.10"


@dataclass(frozen=True, slots=True)
class Party:
    """A téléservice and the PKI certificate (``stem``) registered for it."""

    stem: str
    client_id: str
    id_teleservice: str
    networks: tuple[str, ...]


A = Party("consumer-a", "client-a", "TS-A", ("127.0.0.0/8", "::1/128"))
B = Party("consumer-b", "client-b", "TS-B", ("127.0.0.0/8", "::1/128"))
#: Allowed from TEST-NET-1 only: never from the loopback where the tests run (R-GW-2).
FAR = Party("consumer-far", "client-far", "TS-FAR", (FAR_NETWORK,))
PARTIES = (A, B, FAR)
#: Calls a minute: far above what a module makes, the quota is not tested here.
QUOTA = 100_000


@dataclass(frozen=True, slots=True)
class SeededDocument:
    idensua: str
    docdistrib: str
    code: str
    siren: str
    start: dt.date
    end: dt.date
    content: bytes


@dataclass(frozen=True, slots=True)
class Var:
    """A prepared ``var/``: database, blobs, PKI, téléservices and documents."""

    directory: Path
    documents: tuple[SeededDocument, ...]
    #: The database, when not ``ensu.db`` in ``directory`` (a PostgreSQL URL).
    database_url: str | None = None

    def settings(
        self,
        *,
        tls_mode: TLSMode = TLSMode.DIRECT,
        trusted: tuple[str, ...] = (),
        accel_redirect: bool = False,
    ) -> Settings:
        """Every value explicit, so that no ``ENSU_*`` variable of the shell leaks in."""
        return Settings(
            environment=Environment.SANDBOX,
            var_dir=self.directory,
            database_url=self.database_url or f"sqlite+aiosqlite:///{self.directory / 'ensu.db'}",
            blob_backend=BlobBackend.FILESYSTEM,
            blob_dir=self.directory / "blobs",
            pki_dir=self.directory / "pki",
            tls_mode=tls_mode,
            trusted_proxies=[ipaddress.ip_network(network) for network in trusted],
            accel_redirect=accel_redirect,
        )

    @property
    def pki(self) -> pki.PkiLayout:
        return pki.PkiLayout(self.directory / "pki")

    def pem(self, party: Party) -> str:
        return self.pki.client_cert(party.stem).read_text()

    def forged_cert_header(self, party: Party) -> dict[str, str]:
        """``X-SSL-Client-Cert`` naming ``party``, escaped as nginx escapes it."""
        return {"X-SSL-Client-Cert": quote(self.pem(party), safe="")}

    def thumbprint(self, party: Party) -> str:
        return CertificateRef.from_pem(self.pem(party)).thumbprint

    def context(self, party: Party) -> ssl.SSLContext:
        return pki.client_ssl_context(directory=self.pki.directory, name=party.stem)

    def of(self, siren: str) -> list[SeededDocument]:
        return [document for document in self.documents if document.siren == siren]


def real_pdf(title: str, *, lines: int, attachment: int = 0) -> bytes:
    """A real PDF (fpdf2): ``lines`` of text under ``title``, and optionally an attached
    file of ``attachment`` random (incompressible) bytes to make it large."""
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=9)
    for number in range(lines + 1):
        text = title if number == 0 else f"{title} - ligne {number:05d} - texte de test"
        document.cell(text=text, new_x="LMARGIN", new_y="NEXT")
    if attachment:
        document.embed_file(bytes=os.urandom(attachment), basename="annexe.bin")
    return bytes(document.output())


class Planned(NamedTuple):
    siren: str
    code: str
    start: dt.date
    end: dt.date
    lines: int
    attachment: int = 0


#: LARGE is bigger than every buffer nginx keeps in memory (R-DATA-4: whole documents).
LARGE = 4 * 1024 * 1024
PLAN = (
    Planned(SIREN, "TVA-CA3", dt.date(2024, 1, 1), dt.date(2024, 1, 31), 3),
    Planned(SIREN, "IS-2065", dt.date(2023, 1, 1), dt.date(2023, 12, 31), 80),
    Planned(SIREN, "RIB-PRO", dt.date(2024, 3, 1), dt.date(2024, 3, 1), 2),
    Planned(SIREN, "HISTO-PAIEMENTS", dt.date(2023, 1, 1), dt.date(2023, 12, 31), 5, LARGE),
    Planned(OTHER_SIREN, "AVIS-CFE", dt.date(2024, 1, 1), dt.date(2024, 12, 31), 4),
)


def prepare(directory: Path, *, database_url: str | None = None) -> Var:
    """Migrate, make the PKI (plus FAR's certificate), register the parties, seed; in
    ``directory``'s own SQLite database, or in ``database_url`` (an empty PostgreSQL
    database), the blobs staying in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    var = Var(directory, (), database_url)
    settings = var.settings()
    db.upgrade(settings.database_url)
    pki.init(directory=var.pki.directory)
    pki.issue_client(directory=var.pki.directory, name=FAR.stem)
    seeded = anyio.run(_seed, var, settings)
    return Var(directory, tuple(seeded), database_url)


async def _seed(var: Var, settings: Settings) -> list[SeededDocument]:
    engine = db.make_engine(settings.database_url)
    sessionmaker = db.make_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            await _register(session, var)
            return await _add_documents(session, settings, sessionmaker)
    finally:
        await engine.dispose()


async def _register(session: AsyncSession, var: Var) -> None:
    await register_parties(session, var, [(party, QUOTA) for party in PARTIES])


async def register_parties(
    session: AsyncSession, var: Var, parties: Sequence[tuple[Party, int]]
) -> None:
    """The test organisation and a téléservice per party, with its quota per minute."""
    await consumers.ensure_organisation(
        session=session, siret=SIRET, name="Organisation de test", actor="test"
    )
    for party, quota in parties:
        await consumers.create_teleservice(
            session=session,
            organisation_siret=SIRET,
            name=f"Téléservice {party.id_teleservice}",
            environment=Environment.SANDBOX,
            certificates=[CertificateRef.from_pem(var.pem(party))],
            families=sorted(FAMILIES),
            period_start=dt.date(2020, 1, 1),
            period_end=dt.date(2030, 12, 31),
            networks=list(party.networks),
            valid_from=dt.date(2020, 1, 1),
            quota_per_minute=quota,
            quota_decision=TEST_GRANT if quota > DEFAULT_QUOTAS[Environment.SANDBOX] else None,
            client_id=party.client_id,
            id_teleservice=party.id_teleservice,
            actor="test",
        )


async def _add_documents(
    session: AsyncSession, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> list[SeededDocument]:
    store = documents.make_blob_store(settings=settings, sessionmaker=sessionmaker)
    seeded: list[SeededDocument] = []
    for index, (siren, code, start, end, lines, attachment) in enumerate(PLAN):
        title = f"{siren} {code} {start.isoformat()}"
        content = real_pdf(title, lines=lines, attachment=attachment)
        await store.put(content)
        subject = await documents.ensure_subject(
            session=session, siren=siren, idsp=None, denomination=f"Entreprise {siren}"
        )
        document = SeededDocument(new_idensua(), f"DD{index:04d}", code, siren, start, end, content)
        await documents.add_document(
            session=session,
            subject=subject,
            document=documents.NewDocument(
                code=code,
                periode_debut=start,
                periode_fin=end,
                date_emission=end + dt.timedelta(days=15),
                sha256=digest(content),
                taille=len(content),
                idensua=document.idensua,
                docdistrib=document.docdistrib,
            ),
        )
        seeded.append(document)
    return seeded


@contextmanager
def app_server(settings: Settings) -> Iterator[int]:
    """The app as ``ensu serve`` runs it (``server_options``), on a free loopback port."""
    options = server_options(settings=settings)
    config = uvicorn.Config(create_app(settings), **options, log_level="warning")
    with serving(config) as port:
        yield port


# -- nginx ----------------------------------------------------------------------------


@dataclass
class Nginx:
    """A running nginx: its master process, port and logs."""

    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log(self) -> str:
        """The error log and anything nginx wrote to stderr before reading its config."""
        parts = []
        for name in ("error.log", "stderr.log"):
            path = self.prefix / name
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path} ---\n{text or '(empty)'}")
        return "\n".join(parts)


#: The nginx instances running now: a failing test's report shows their logs.
RUNNING: list[Nginx] = []
#: Other log files (say, of app processes) a failing test's report shows, by title.
REPORTED_LOGS: dict[str, Path] = {}
#: How much of the end of each of those a report shows.
REPORTED_TAIL = 6000


def require_nginx() -> str:
    """The nginx binary; fails under CI=true, skips (with the reason) elsewhere."""
    binary = nginx.nginx_binary()
    if binary is None:
        message = "nginx is not installed (make system-deps installs it)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true: nginx is required")
        pytest.skip(message)
    return binary


async def call_records(var: Var) -> list[CallRecord]:
    """Every call record of the journal, in index order."""
    records = await journal_records(var.settings())
    return [record for record in records if isinstance(record, CallRecord)]


#: The ``ensu`` console script of this environment.
ENSU_COMMAND = Path(sys.executable).parent / "ensu"


def spawn_serve(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """``ensu serve ARGS`` as a real process in a process group of its own (so that a
    kill reaches all of it), its output appended to ``log``. Without the availability
    probe, the operators' listener nor the portal unless ``env`` asks for them: their
    calls and ports would mix with what these tests count (test_operator_watches_metrics
    and test_serve_with_portal have them)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(ENSU_COMMAND), "serve", *args],
            cwd=cwd,
            env={
                "ENSU_PROBE_ENABLED": "false",
                "ENSU_METRICS_PORT": "0",
                "ENSU_PORTAL_PORT": "0",
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )


def wait_healthy(
    process: subprocess.Popen[bytes], client: httpx.Client, url: str, *, timeout: float
) -> bool:
    """True once ``url`` (etatSante) answers 200 through ``client``; False if the process
    exited or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with suppress(httpx.TransportError):
            if client.get(url).status_code == 200:
                return True
        time.sleep(0.05)
    return False


def kill_group(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGKILL to the process's group, then reap it: nothing of it outlives the test."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_nginx(
    *, var: Var, prefix: Path, upstream_port: int | None = None, upstreams: Sequence[str] = ()
) -> Iterator[Nginx]:
    """nginx from the project's template, in front of the loopback's ``upstream_port``
    and/or of every ``host:port`` of ``upstreams`` (round robin), until exit."""
    servers = [*upstreams] + ([f"127.0.0.1:{upstream_port}"] if upstream_port else [])
    assert servers, "nginx needs at least one upstream"
    running = _started(require_nginx(), var=var, prefix=prefix, upstreams=servers)
    RUNNING.append(running)
    try:
        yield running
    finally:
        RUNNING.remove(running)
        _stop(running.process)


def _started(binary: str, *, var: Var, prefix: Path, upstreams: Sequence[str]) -> Nginx:
    """A started nginx. It binds its own port, so one picked free may be taken in
    between: nginx then exits with "Address already in use" and another port is tried."""
    for _ in range(NGINX_BIND_ATTEMPTS):
        running = _start(binary, var=var, prefix=prefix, upstreams=upstreams)
        if _wait_ready(running):
            return running
        _stop(running.process)
        if "in use" not in running.log():
            break
    pytest.fail(f"nginx did not start:\n{running.log()}")


def _start(binary: str, *, var: Var, prefix: Path, upstreams: Sequence[str]) -> Nginx:
    port = free_port()
    site = nginx.NginxSite(
        prefix=prefix,
        listen=f"127.0.0.1:{port}",
        upstreams=list(upstreams),
        pki=var.pki,
        blob_dir=var.directory / "blobs",
        # The tests' folders are private to the user running them (root on CI): the
        # workers run as that user to read the blobs (the product's default never is root).
        user=f"{pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name}",
    )
    config = nginx.write(site)
    for name in ("error.log", "stderr.log", "nginx.pid"):
        (prefix / name).unlink(missing_ok=True)
    # -e: where the start-up logs, before the configuration names its own error_log.
    command = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)]
    with (prefix / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True
        )
    return Nginx(process, port, prefix)


def _wait_ready(running: Nginx) -> bool:
    """True once nginx has bound its port (the pid file follows the binding) and accepts."""
    deadline = time.monotonic() + NGINX_START_TIMEOUT
    pid_file = running.prefix / "nginx.pid"
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            return False
        if pid_file.exists() and pid_file.read_text().strip() == str(running.process.pid):
            with suppress(OSError), socket.create_connection(("127.0.0.1", running.port), 1):
                return True
        time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGTERM); the master reaps its workers. Stragglers of the process
    group made for this nginx are killed, so nothing outlives the tests."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=NGINX_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Show the logs of the running nginx instances (and the ``REPORTED_LOGS``) in the
    report of a failing test."""
    report = yield
    if report.failed:
        for running in RUNNING:
            report.sections.append((f"nginx on port {running.port}", running.log()))
        for title, path in REPORTED_LOGS.items():
            text = path.read_text(errors="replace")[-REPORTED_TAIL:] if path.exists() else ""
            report.sections.append((title, text or "(empty)"))
    return report


# -- the stack ------------------------------------------------------------------------


@dataclass
class Stack:
    """A prepared ``var/`` and the base URLs of the ways in (see the module docstring)."""

    var: Var
    urls: dict[str, str]
    root: Path
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def client(self, route: str, party: Party) -> httpx.Client:
        """A client of ``route`` presenting ``party``'s certificate (TLS routes)."""
        base_url = self.urls[route]
        if base_url.startswith("http://"):
            return httpx.Client(base_url=base_url)
        return httpx.Client(base_url=base_url, verify=self.var.context(party))

    def token(self, route: str, party: Party) -> str:
        """An access token of ``party``, obtained the honest way through ``route``."""
        key = (route, party.stem)
        if key not in self.tokens:
            with self.client(route, party) as client:
                response = request_token(client, party.client_id)
            assert response.status_code == 200, response.text
            self.tokens[key] = response.json()["access_token"]
        return self.tokens[key]


def request_token(
    client: httpx.Client, client_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": client_id},
        headers=headers,
    )


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: the tests read what the server bound it to."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The apps of one test module: direct mode, behind-nginx, the attacker's target.

    nginx itself starts with the first test that takes the ``nginx`` route, so that the
    other tests run (and tell) when nginx is missing.
    """
    root = tmp_path_factory.mktemp("edge")
    var = prepare(root / "var")
    with ExitStack() as apps:
        direct = apps.enter_context(app_server(var.settings()))
        # Behind nginx as deployed: PDFs handed to nginx with X-Accel-Redirect.
        proxy_settings = var.settings(
            tls_mode=TLSMode.PROXY, trusted=(NGINX_PEER,), accel_redirect=True
        )
        upstream = apps.enter_context(app_server(proxy_settings))
        untrusted_settings = var.settings(tls_mode=TLSMode.PROXY, trusted=(OTHER_PROXY,))
        untrusted = apps.enter_context(app_server(untrusted_settings))
        urls = {
            "direct": f"https://127.0.0.1:{direct}",
            "upstream": f"http://127.0.0.1:{upstream}",
            "untrusted": f"http://127.0.0.1:{untrusted}",
        }
        yield Stack(var, urls, root)


@pytest.fixture(scope="module")
def nginx_edge(stack: Stack) -> Iterator[Nginx]:
    """nginx in front of the ``upstream`` app, for the rest of the module."""
    upstream_port = int(stack.urls["upstream"].rsplit(":", 1)[1])
    prefix = stack.root / "nginx"
    with running_nginx(var=stack.var, prefix=prefix, upstream_port=upstream_port) as running:
        stack.urls["nginx"] = running.base_url
        yield running
    del stack.urls["nginx"]


@pytest.fixture(params=["direct", "nginx"])
def route(request: pytest.FixtureRequest, stack: Stack) -> str:
    """The two edges a consumer meets: uvicorn's own mutual TLS, or nginx's."""
    if request.param == "nginx":
        request.getfixturevalue("nginx_edge")
    name: str = request.param
    return name


def api_headers(token: str, party: Party) -> dict[str, str]:
    """Every header the contract requires, right for ``party``; a fresh correlation id."""
    return {
        "Authorization": f"Bearer {token}",
        "ID_Teleservice": party.id_teleservice,
        "X-Correlation-ID": str(uuid.uuid4()),
    }
