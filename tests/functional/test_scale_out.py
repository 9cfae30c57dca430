"""Scale-out: nginx terminating mutual TLS in front of two app instances.

The acceptance test of the scaled-out mode of ``deploy/README.md``: two ``ensu serve``
processes in proxy mode (the console script, as users run it), each with its own port
and ``var/`` as on two hosts, share one PostgreSQL database (consumers, tokens' keys and
revocations, documents and their blobs, the journal) and one Redis (quota counters),
the secret key and the journal's signing key. nginx, rendered from the project's
template, spreads the calls over both (round robin); the client is a consumer
presenting its certificate to nginx (mutual TLS).

Which instance answered a call is read from each instance's own log (JSON lines,
``ensu.logs``): every call carries a unique ``X-Correlation-ID``, and the request lines of
exactly one instance name it, with the status the client received. The checks:

1. consecutive calls through nginx alternate between the instances, and a token issued
   by one is accepted by the other (R-GW-4);
2. R-Q-1: a burst of quota + 4 concurrent calls over both instances is accepted exactly
   quota times, the others answered 429 900804 with a right ``Retry-After``;
3. a suspension made elsewhere (``ensu consumers suspend`` on the shared database) is
   enforced by both instances within a second of the command's return (403 910004), and
   so is the resumption (R-SEC-2, R-OPS-2);
4. a token revoked through one instance (RFC 7009) is refused by the other (401 900901)
   within a second;
5. R-TR-2: once the instances are stopped, ``ensu journal verify`` verifies one log —
   contiguous indices, signed checkpoints — holding exactly one record per call made,
   calls served by both instances, and every event once.

The tests share the module's cluster and run in file order (the last stops it); each
makes the calls it checks. PostgreSQL, Redis and nginx are required: without one the
module skips, or fails under CI=true.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select
from typer.testing import CliRunner

from ensu import db
from ensu.audit import keys, store
from ensu.audit.models import Event
from ensu.audit.records import CallRecord, EventRecord, Record, decode
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.cli import app as cli
from ensu.config import BlobBackend, Settings, get_settings
from ensu.documents import service as documents
from ensu.documents.identifiers import new_idensua
from ensu.documents.storage import digest
from ensu.edge.nginx import NginxSite, render
from ensu.gateway.quota.counter import WINDOW_SECONDS, window_of
from ensu.pki import service as pki
from tests.conftest import REDIS_URL, _truncate_postgres, require_service
from tests.functional.conftest import (
    ENSU_COMMAND,
    REPORTED_LOGS,
    SIREN,
    Nginx,
    Party,
    SeededDocument,
    Var,
    api_headers,
    free_port,
    kill_group,
    real_pdf,
    register_parties,
    request_token,
    require_nginx,
    running_nginx,
    spawn_serve,
    wait_healthy,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

#: Unique téléservice identifiers: the quota counters' Redis keys are this run's own.
RUN = secrets.token_hex(3).upper()
LOOPBACK = ("127.0.0.0/8", "::1/128")
#: The burst's téléservice; the second one only if the minute turns during the first burst.
QUOTA_PARTIES = (
    Party("consumer-a", f"client-q1-{RUN}", f"TS-Q1-{RUN}", LOOPBACK),
    Party("consumer-a", f"client-q2-{RUN}", f"TS-Q2-{RUN}", LOOPBACK),
)
#: The téléservice of the other checks: its quota is out of the way.
MAIN = Party("consumer-b", f"client-main-{RUN}", f"TS-MAIN-{RUN}", LOOPBACK)
QUOTA = 6
BURST = QUOTA + 4  # concurrent calls
FOLLOW_UP = 2  # then sequential calls, one per instance: both must see the spent quota
MAIN_QUOTA = 100_000
#: The bound of the acceptance: a change is enforced everywhere within this (seconds).
PROPAGATION = 1.0
#: Calls made after the bound, so that each instance answers several.
PAST_BOUND = 8
#: A burst starts at least this long before its minute ends (seconds).
WINDOW_MARGIN = 5.0
#: Bounds for a broken stack only; a healthy one is far quicker.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0
LOOP_TIMEOUT = 20.0
#: The instances' writers sign a checkpoint 10 s after they start, then every 10 s.
CHECKPOINT_TIMEOUT = 30.0
START_ATTEMPTS = 3  # a port picked free may be taken before the instance binds it

PUBLIC_URL = "https://api.ensu.test"
PREFIX = "/ensudocuments/v1"
ETAT_SANTE = f"{PREFIX}/etatSante"
LIST = f"{PREFIX}/documents"
#: An instance's request line (ensu.logs, JSON): one per request it answered.
ACCESS_LOGGER = "ensu.access"


@dataclass(frozen=True)
class Answered:
    """What an instance's request line says of one request."""

    method: str
    path: str
    status: int
    correlation_id: str | None


# -- the cluster -----------------------------------------------------------------------


@dataclass
class Instance:
    """``ensu serve`` in proxy mode, in its own process group, ``var/`` and port."""

    name: str
    root: Path
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def var_dir(self) -> Path:
        return self.root / "var"

    @property
    def log(self) -> Path:
        return self.root / "serve.log"

    @property
    def upstream(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def spawn(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = self.env | {"ENSU_VAR_DIR": str(self.var_dir), "ENSU_LOG_FORMAT": "json"}
        self.process = spawn_serve(["--port", str(self.port)], env=env, cwd=self.root, log=self.log)

    def wait_ready(self) -> bool:
        """True once it answers etatSante (plain HTTP, as nginx reaches it); False if it
        exited."""
        assert self.process is not None
        with httpx.Client(base_url=f"http://{self.upstream}", timeout=2.0) as client:
            return wait_healthy(self.process, client, ETAT_SANTE, timeout=START_TIMEOUT)

    def stop(self) -> int | None:
        """A graceful stop (SIGTERM: the journal writer commits what it holds); the exit
        status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to its process group; nothing of it outlives the tests."""
        if self.process is None:
            return
        kill_group(self.process, timeout=STOP_TIMEOUT)

    def requests(self) -> list[Answered]:
        """Every request it answered, from its request lines (ensu.logs)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        answered = []
        for raw in text.splitlines():
            if not raw.startswith("{"):
                continue  # the banner, printed before logging is set up
            line = json.loads(raw)
            if line.get("logger") == ACCESS_LOGGER and line["event"] == "request":
                answered.append(
                    Answered(line["method"], line["path"], line["status"], line["correlation_id"])
                )
        return answered


def start(instances: Sequence[Instance]) -> None:
    """Start the instances together; one whose port was taken meanwhile starts again."""
    for instance in instances:
        instance.spawn()
    for instance in instances:
        for attempt in range(START_ATTEMPTS):
            if attempt:
                instance.spawn()
            if instance.wait_ready():
                break
            instance.kill()
            if "address already in use" not in instance.log_tail().lower():
                break
        else:
            pytest.fail(f"instance {instance.name} did not start:\n{instance.log_tail()}")
        if instance.process is None or instance.process.poll() is not None:
            pytest.fail(f"instance {instance.name} did not start:\n{instance.log_tail()}")


@dataclass(frozen=True)
class Call:
    """One call through nginx and what came back."""

    reference: str | None
    correlation_id: str
    started: float  # time.monotonic()
    status: int
    code: str | None
    headers: httpx.Headers
    content: bytes


@dataclass
class Cluster:
    """Two instances behind nginx, the shared settings, and every call made through it."""

    var: Var  # the PKI: nginx's server certificate and CA, the consumers' certificates
    database_url: str
    env: dict[str, str]  # the ENSU_* settings every instance shares
    keys_dir: Path  # a var/ holding the shared journal key (for the CLI)
    instances: tuple[Instance, Instance]
    edge: Nginx
    document: SeededDocument
    ledger: list[Call] = field(default_factory=list)
    #: The events this module caused through the API or the CLI, by tag.
    caused: Counter[str] = field(default_factory=Counter)
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, party: Party) -> httpx.Client:
        """A client of nginx presenting ``party``'s certificate."""
        return httpx.Client(
            base_url=self.edge.base_url, verify=self.var.context(party), timeout=10.0
        )

    def token(self, party: Party) -> str:
        """A new access token of ``party`` (POST /token through nginx)."""
        with self.client(party) as client:
            response = request_token(client, party.client_id)
        assert response.status_code == 200, response.text
        self.caused[EventTag.OAUTH_TOKEN_ISSUED] += 1
        token: str = response.json()["access_token"]
        return token

    def call(self, client: httpx.Client, party: Party, token: str) -> Call:
        """List the seeded SIREN's documents, tagged with a unique ``referenceDemande``."""
        reference = f"ref-{next(self._numbers):06d}"
        params = {"siren": SIREN, "referenceDemande": reference}
        return self._send(client, LIST, params, reference, api_headers(token, party))

    def download(self, client: httpx.Client, party: Party, token: str) -> Call:
        path = f"{LIST}/IDENSUA/{self.document.idensua}/contenu"
        return self._send(client, path, {}, None, api_headers(token, party))

    def _send(
        self,
        client: httpx.Client,
        path: str,
        params: dict[str, str],
        reference: str | None,
        headers: dict[str, str],
    ) -> Call:
        started = time.monotonic()
        response = client.get(path, params=params, headers=headers)
        code = None
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            code = response.json()["code"]
        call = Call(
            reference,
            headers["X-Correlation-ID"],
            started,
            response.status_code,
            code,
            response.headers,
            response.content,
        )
        with self._lock:
            self.ledger.append(call)
        return call

    def served(self, calls: Sequence[Call]) -> list[str]:
        """The instance that answered each call (by its request lines), in order."""
        where: dict[str, list[tuple[str, int]]] = {}
        for instance in self.instances:
            for answered in instance.requests():
                if answered.correlation_id:
                    where.setdefault(answered.correlation_id, []).append(
                        (instance.name, answered.status)
                    )
        names = []
        for call in calls:
            found = where.get(call.correlation_id, [])
            assert len(found) == 1, f"{call.correlation_id} was answered by {found}, not by one"
            name, status = found[0]
            assert status == call.status, (call.correlation_id, name, status, call.status)
            names.append(name)
        return names

    def answered(self, method: str, path: str) -> list[str]:
        """The instances that answered ``method path``, once per request."""
        return [
            instance.name
            for instance in self.instances
            for answered in instance.requests()
            if (answered.method, answered.path) == (method, path)
        ]

    def cli(self, *arguments: str, var_dir: Path | None = None) -> subprocess.Popen[bytes]:
        """``ensu ARGUMENTS`` with the shared settings, as an operator runs it."""
        env = self.env | {"ENSU_VAR_DIR": str(var_dir or self.keys_dir)}
        return subprocess.Popen(
            [str(ENSU_COMMAND), *arguments],
            cwd=self.keys_dir.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run_cli(self, *arguments: str) -> str:
        process = self.cli(*arguments)
        out, err = process.communicate(timeout=CLI_TIMEOUT)
        assert process.returncode == 0, (arguments, out.decode(), err.decode())
        return out.decode()

    def stop(self) -> dict[str, int | None]:
        """nginx first (no new calls), then each instance gracefully: exit statuses."""
        self.edge.process.terminate()
        self.edge.process.wait(timeout=STOP_TIMEOUT)
        return {instance.name: instance.stop() for instance in self.instances}


def shared_env(database_url: str, secret: str) -> dict[str, str]:
    """The settings every instance shares (deploy/README.md), none of the shell's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENSU_")}
    return env | {
        "ENSU_ENVIRONMENT": "sandbox",
        "ENSU_DATABASE_URL": database_url,
        "ENSU_REDIS_URL": REDIS_URL,
        "ENSU_BLOB_BACKEND": "database",
        "ENSU_TLS_MODE": "proxy",
        "ENSU_TRUSTED_PROXIES": "127.0.0.1/32",  # nginx's address towards the instances
        "ENSU_SECRET_KEY": secret,
        "ENSU_PUBLIC_URL": PUBLIC_URL,
        "PYTHONUNBUFFERED": "1",
    }


async def _seed(database_url: str, var: Var) -> SeededDocument:
    """The organisation, the three téléservices, one document (its PDF in PostgreSQL)."""
    settings = Settings(database_url=database_url, blob_backend=BlobBackend.DATABASE)
    engine = db.make_engine(database_url)
    sessionmaker = db.make_sessionmaker(engine)
    parties = [(party, QUOTA) for party in QUOTA_PARTIES] + [(MAIN, MAIN_QUOTA)]
    start, end = dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    content = real_pdf(f"{SIREN} TVA-CA3", lines=3)
    seeded = SeededDocument(new_idensua(), "DD-SCALE", "TVA-CA3", SIREN, start, end, content)
    try:
        async with sessionmaker() as session, session.begin():
            await register_parties(session, var, parties)
            await documents.make_blob_store(settings=settings, sessionmaker=sessionmaker).put(
                content
            )
            subject = await documents.ensure_subject(
                session=session, siren=SIREN, idsp=None, denomination=f"Entreprise {SIREN}"
            )
            await documents.add_document(
                session=session,
                subject=subject,
                document=documents.NewDocument(
                    code=seeded.code,
                    periode_debut=start,
                    periode_fin=end,
                    date_emission=end + dt.timedelta(days=15),
                    sha256=digest(content),
                    taille=len(content),
                    idensua=seeded.idensua,
                    docdistrib=seeded.docdistrib,
                ),
            )
    finally:
        await engine.dispose()
    return seeded


def _forget_counters() -> None:
    """Delete this run's quota counters (their keys name its téléservices)."""
    client = Redis.from_url(REDIS_URL)
    try:
        for name in client.scan_iter(match=f"ensu:*:quota:*{RUN}:*", count=1000):
            client.delete(name)
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_database: str) -> Iterator[Cluster]:
    """Migrate and seed the shared database, start both instances, then nginx."""
    require_service("Redis", REDIS_URL)
    require_nginx()
    root = tmp_path_factory.mktemp("scale-out")
    _truncate_postgres(postgres_database)  # the session's database: start from nothing
    env = shared_env(postgres_database, secrets.token_urlsafe(32))
    # The journal's signing key, made once and copied to every instance (deploy/README.md).
    keys_dir = root / "operator" / "var"
    keys.load_or_create_signer(Settings(var_dir=keys_dir, public_url=PUBLIC_URL))
    var = Var(root / "edge", ())
    pki.init(directory=var.pki.directory)
    instances = (Instance("A", root / "a", env), Instance("B", root / "b", env))
    with ExitStack() as stack:
        stack.callback(_forget_counters)
        for instance in instances:
            shutil.copytree(keys_dir / "journal", instance.var_dir / "journal")
            REPORTED_LOGS[f"instance {instance.name}"] = instance.log
            stack.callback(REPORTED_LOGS.pop, f"instance {instance.name}", None)
            stack.callback(instance.kill)
        upgrade = subprocess.run(  # what the operator runs once, before any instance starts
            [str(ENSU_COMMAND), "db", "upgrade"],
            cwd=root,
            env=env | {"ENSU_VAR_DIR": str(keys_dir)},
            capture_output=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert upgrade.returncode == 0, upgrade.stderr.decode()
        document = anyio.run(_seed, postgres_database, var)
        start(instances)
        edge = stack.enter_context(
            running_nginx(
                var=var,
                prefix=root / "nginx",
                upstreams=[instance.upstream for instance in instances],
            )
        )
        yield Cluster(var, postgres_database, env, keys_dir, instances, edge, document)


# -- helpers of the checks -------------------------------------------------------------


def calls_while(
    cluster: Cluster,
    client: httpx.Client,
    party: Party,
    token: str,
    change: subprocess.Popen[bytes],
) -> tuple[list[Call], float]:
    """Call until ``change`` (a CLI command) exits; the calls, and when it was seen done."""
    calls: list[Call] = []
    deadline = time.monotonic() + CLI_TIMEOUT
    while change.poll() is None:
        assert time.monotonic() < deadline, "the command did not finish"
        calls.append(cluster.call(client, party, token))
    done = time.monotonic()
    out, err = change.communicate()
    assert change.returncode == 0, (out.decode(), err.decode())
    return calls, done


def calls_past_bound(
    cluster: Cluster, client: httpx.Client, party: Party, token: str, changed: float
) -> list[Call]:
    """Call until ``PAST_BOUND`` calls have started a second or more after ``changed``."""
    bound = changed + PROPAGATION
    calls: list[Call] = []
    deadline = bound + LOOP_TIMEOUT
    while sum(call.started >= bound for call in calls) < PAST_BOUND:
        assert time.monotonic() < deadline, "calls too slow to pass the bound"
        calls.append(cluster.call(client, party, token))
    return calls


def timeline(cluster: Cluster, calls: Sequence[Call], changed: float) -> list[str]:
    """``instance +seconds status code`` of each call, for the failure messages."""
    return [
        f"{name} {call.started - changed:+.3f}s {call.status} {call.code or ''}"
        for name, call in zip(cluster.served(calls), calls, strict=True)
    ]


def assert_enforced(
    cluster: Cluster, calls: Sequence[Call], changed: float, expected: tuple[int, str | None]
) -> None:
    """Every call started a second or more after ``changed`` got ``expected`` (status,
    code), on each instance, several times."""
    late = [call for call in calls if call.started >= changed + PROPAGATION]
    served = cluster.served(late)
    assert Counter(served)["A"] >= 2, served
    assert Counter(served)["B"] >= 2, served
    wrong = [call for call in late if (call.status, call.code) != expected]
    assert not wrong, "\n".join(timeline(cluster, calls, changed))


# -- 0. the nginx configuration -------------------------------------------------------


def test_nginx_config_lists_every_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ensu edge nginx-config`` (deploy/README.md) renders the template with one
    ``server`` line per ``--upstream``, which nginx accepts; without the PKI it says so."""
    binary = require_nginx()
    var_dir, prefix = tmp_path / "var", tmp_path / "nginx"
    monkeypatch.setenv("ENSU_VAR_DIR", str(var_dir))
    get_settings.cache_clear()
    arguments = ["edge", "nginx-config", "--listen", "0.0.0.0:8443", "--prefix", str(prefix)]
    arguments += ["--upstream", "10.0.0.11:8001", "--upstream", "10.0.0.12:8001"]
    try:
        refused = CliRunner().invoke(cli, arguments)
        pki.init(directory=var_dir / "pki")
        result = CliRunner().invoke(cli, arguments)
    finally:
        get_settings.cache_clear()
    assert refused.exit_code == 1
    assert "no server certificate or client CA" in refused.output
    assert result.exit_code == 0, result.output
    config = prefix / "nginx.conf"
    site = NginxSite(
        prefix=prefix,
        listen="0.0.0.0:8443",
        upstreams=["10.0.0.11:8001", "10.0.0.12:8001"],
        pki=pki.PkiLayout(var_dir / "pki"),
        blob_dir=var_dir / "blobs",
    )
    assert config.read_text() == render(site)
    assert re.findall(r"^\s*server (\S+);$", config.read_text(), re.MULTILINE) == [
        "10.0.0.11:8001",
        "10.0.0.12:8001",
    ]
    test = [binary, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)]
    checked = subprocess.run(test, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert checked.returncode == 0, checked.stderr.decode()


# -- 1. the two instances --------------------------------------------------------------


def test_calls_through_nginx_alternate_between_the_instances(cluster: Cluster) -> None:
    """Round robin over both instances; a token issued by either is accepted by both;
    the PDF (a blob in PostgreSQL) comes whole from both."""
    token = cluster.token(MAIN)
    with cluster.client(MAIN) as client:
        calls = [cluster.call(client, MAIN, token) for _ in range(6)]
        downloads = [cluster.download(client, MAIN, token) for _ in range(2)]
    assert [call.status for call in calls + downloads] == [200] * 8
    for call in calls:
        listed = json.loads(call.content)["documents"]
        assert [document["identifiants"]["IDENSUA"] for document in listed] == [
            cluster.document.idensua
        ]
    served = cluster.served(calls)
    assert all(one != other for one, other in itertools.pairwise(served)), served
    content_path = f"{LIST}/IDENSUA/{cluster.document.idensua}/contenu"
    assert sorted(cluster.answered("GET", content_path)) == ["A", "B"]
    for download in downloads:
        assert download.content == cluster.document.content
        assert download.headers["Repr-Digest"].startswith("sha-256=:")


# -- 2. the quota ----------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    calls: list[Call]  # concurrent
    follow_up: list[Call]  # then sequential
    began: float  # time.time() before the first call
    ended: float  # time.time() after the last answer


def wait_for_room() -> None:
    """Until the current minute has ``WINDOW_MARGIN`` seconds left (a clock condition)."""
    deadline = time.monotonic() + WINDOW_MARGIN + 5
    while WINDOW_SECONDS - time.time() % WINDOW_SECONDS < WINDOW_MARGIN:
        assert time.monotonic() < deadline, "the clock does not move"
        time.sleep(0.05)


def burst(cluster: Cluster, party: Party) -> Burst | None:
    """``BURST`` calls at once over both instances, then ``FOLLOW_UP`` one after the
    other; None if the minute turned meanwhile (the counts would span two windows)."""
    token = cluster.token(party)
    with ExitStack() as stack:
        clients = [stack.enter_context(cluster.client(party)) for _ in range(BURST)]
        for client in clients:  # the TLS handshakes, before the burst (etatSante: no quota)
            assert client.get(ETAT_SANTE).status_code == 200
        barrier = threading.Barrier(BURST)

        def fire(client: httpx.Client) -> Call:
            barrier.wait(timeout=LOOP_TIMEOUT)
            return cluster.call(client, party, token)

        wait_for_room()
        began = time.time()
        with ThreadPoolExecutor(BURST) as pool:
            calls = list(pool.map(fire, clients))
        follow_up = [cluster.call(clients[0], party, token) for _ in range(FOLLOW_UP)]
        ended = time.time()
    if window_of(began) != window_of(ended):
        return None
    return Burst(calls, follow_up, began, ended)


def test_the_quota_is_exact_across_the_instances(cluster: Cluster) -> None:
    """R-Q-1: quota + 4 calls at once over both instances: exactly quota accepted (each
    with its own rank: remaining 5 … 0), the rest 429 900804 with the Retry-After that
    lands in the next window; then each instance refuses the next call too."""
    outcome = burst(cluster, QUOTA_PARTIES[0]) or burst(cluster, QUOTA_PARTIES[1])
    assert outcome is not None, "the minute turned during both bursts"
    accepted = [call for call in outcome.calls if call.status == 200]
    refused = [call for call in outcome.calls + outcome.follow_up if call.status != 200]
    assert len(accepted) == QUOTA, [call.status for call in outcome.calls]
    assert len(refused) == BURST - QUOTA + FOLLOW_UP
    remaining = sorted(int(call.headers["RateLimit-Remaining"]) for call in accepted)
    assert remaining == list(range(QUOTA))
    window_end = (window_of(outcome.began) + 1) * WINDOW_SECONDS
    earliest = max(1, math.ceil(window_end - outcome.ended))
    latest = math.ceil(window_end - outcome.began)
    for call in refused:
        assert (call.status, call.code) == (429, "900804")
        assert earliest <= int(call.headers["Retry-After"]) <= latest
        assert call.headers["RateLimit-Remaining"] == "0"
        assert call.headers["RateLimit-Limit"] == str(QUOTA)
    assert set(cluster.served(outcome.calls)) == {"A", "B"}
    assert sorted(cluster.served(outcome.follow_up)) == ["A", "B"]


# -- 3. suspension ---------------------------------------------------------------------


def test_a_suspension_made_elsewhere_is_enforced_by_both_instances_within_a_second(
    cluster: Cluster,
) -> None:
    """``ensu consumers suspend`` on the shared database while both instances serve the
    téléservice (their views cached): a second after the command returns, both refuse
    it (403 910004); the same for ``resume``, after which both serve it again."""
    token = cluster.token(MAIN)
    with cluster.client(MAIN) as client:
        before = [cluster.call(client, MAIN, token) for _ in range(4)]
        assert [call.status for call in before] == [200] * 4
        assert sorted(cluster.served(before)) == ["A", "A", "B", "B"]
        for action, tag, expected in (
            ("suspend", EventTag.CONSUMERS_TELESERVICE_SUSPENDED, (403, "910004")),
            ("resume", EventTag.CONSUMERS_TELESERVICE_RESUMED, (200, None)),
        ):
            change = cluster.cli("consumers", action, MAIN.id_teleservice, "--reason", "test")
            during, changed = calls_while(cluster, client, MAIN, token, change)
            cluster.caused[tag] += 1
            after = calls_past_bound(cluster, client, MAIN, token, changed)
            assert_enforced(cluster, during + after, changed, expected)


# -- 4. revocation ---------------------------------------------------------------------


def test_a_token_revoked_through_one_instance_is_refused_by_the_other_within_a_second(
    cluster: Cluster,
) -> None:
    """POST /revoke (RFC 7009) lands on one instance; a second later at most, the token
    is refused by both (401 900901), while another token of the same client still works."""
    token, other = cluster.token(MAIN), cluster.token(MAIN)
    with cluster.client(MAIN) as client:
        before = [cluster.call(client, MAIN, token) for _ in range(4)]
        assert [call.status for call in before] == [200] * 4
        assert sorted(cluster.served(before)) == ["A", "A", "B", "B"]
        response = client.post(
            "/revoke", data={"token": token, "client_id": MAIN.client_id}, timeout=10.0
        )
        changed = time.monotonic()
        assert response.status_code == 200, response.text
        cluster.caused[EventTag.OAUTH_TOKEN_REVOKED] += 1
        after = calls_past_bound(cluster, client, MAIN, token, changed)
        control = [cluster.call(client, MAIN, other) for _ in range(2)]
    revoker = cluster.answered("POST", "/revoke")
    assert len(revoker) == 1
    assert_enforced(cluster, after, changed, (401, "900901"))
    assert [call.status for call in control] == [200, 200]
    assert sorted(cluster.served(control)) == ["A", "B"]


# -- 5. one journal --------------------------------------------------------------------


async def _journal(url: str) -> tuple[list[int], list[Record], int | None]:
    """Every leaf index and record, in order, and the size of the latest checkpoint."""
    journal = JournalStore(url)
    indices: list[int] = []
    records: list[Record] = []
    try:
        async with journal.read() as connection:
            while rows := await store.leaves(connection, len(indices), store.READ_CHUNK):
                indices += [int(row.leaf_index) for row in rows]
                records += [decode(row.record) for row in rows]
            latest = await store.latest_checkpoint(connection)
    finally:
        await journal.dispose()
    return indices, records, None if latest is None else latest.tree_size


async def _checkpoints(url: str) -> bool:
    """Whether the journal holds a signed checkpoint."""
    journal = JournalStore(url)
    try:
        async with journal.read() as connection:
            return await store.latest_checkpoint(connection) is not None
    finally:
        await journal.dispose()


async def _outbox(url: str) -> tuple[int, int]:
    """How many events the outbox holds, and how many still wait for the journal."""
    engine = db.make_engine(url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            total = await session.scalar(select(func.count()).select_from(Event))
            waiting = await session.scalar(
                select(func.count()).select_from(Event).where(Event.journal_index.is_(None))
            )
    finally:
        await engine.dispose()
    return int(total or 0), int(waiting or 0)


def wait_for_checkpoint(url: str) -> None:
    """Until the instances have signed a checkpoint (their writers do every 10 s)."""
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT
    while not anyio.run(_checkpoints, url):
        assert time.monotonic() < deadline, "no instance signed a checkpoint"
        time.sleep(0.1)


def test_the_journal_is_one_verifiable_log_whatever_instance_wrote(cluster: Cluster) -> None:
    """R-TR-2: after traffic on both instances, a checkpoint they signed, and their
    graceful stop, the operator's ``ensu journal relay`` (events recorded in the last
    second, and a checkpoint of the whole log) and ``ensu journal verify`` find one log:
    contiguous, signed with the one key, one record per call made (those answered by A
    and those answered by B), every event of the outbox journaled exactly once."""
    token = cluster.token(MAIN)
    with cluster.client(MAIN) as client:
        calls = [cluster.call(client, MAIN, token) for _ in range(4)]
    assert [call.status for call in calls] == [200] * 4
    assert sorted(cluster.served(calls)) == ["A", "A", "B", "B"]
    wait_for_checkpoint(cluster.database_url)
    exits = cluster.stop()
    for instance in cluster.instances:
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert exits[instance.name] in {0, -signal.SIGTERM}, exits
        log = instance.log.read_text(errors="replace")
        assert "Application shutdown complete" in log, instance.name
        assert "Traceback" not in log, instance.name

    cluster.run_cli("journal", "relay")  # also signs a checkpoint of the whole log
    result = json.loads(cluster.run_cli("journal", "verify", "--json"))
    assert result["ok"] is True, result
    assert result["checkpoints"] >= 1

    indices, records, latest = anyio.run(_journal, cluster.database_url)
    assert indices == list(range(len(indices)))
    assert result["size"] == len(indices)
    assert latest == len(indices)  # the last checkpoint covers every record
    call_records = [record for record in records if isinstance(record, CallRecord)]
    journaled = Counter(record.correlation_id for record in call_records)
    assert journaled == Counter(call.correlation_id for call in cluster.ledger)  # one each
    status = {record.correlation_id: record.status for record in call_records}
    assert all(status[call.correlation_id] == call.status for call in cluster.ledger)
    tagged = [call for call in cluster.ledger if call.reference is not None]
    for name in ("A", "B"):  # the calls each instance answered are all in the one log
        answered = [c for c, n in zip(tagged, cluster.served(tagged), strict=True) if n == name]
        assert len(answered) >= 2
        assert all(call.correlation_id in journaled for call in answered)

    events = [record for record in records if isinstance(record, EventRecord)]
    # Relayed from the outbox (an event_id each) or, for token issuances, journaled
    # straight through the group commit (no outbox row, no event_id).
    event_ids = Counter(record.event_id for record in events if record.event_id is not None)
    total, waiting = anyio.run(_outbox, cluster.database_url)
    assert waiting == 0
    assert len(event_ids) == total
    assert set(event_ids.values()) == {1}  # each event once, whoever relayed it
    tags = Counter(record.tag for record in events)
    for tag, count in cluster.caused.items():
        assert tags[tag] == count, (tag, tags[tag], count)
