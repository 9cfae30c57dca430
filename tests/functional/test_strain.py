"""Behaviour under strain: stores slow or cut, SIGTERM, a burst beyond capacity.

The app runs in its scaled-out mode: PostgreSQL (consumers, keys, documents, the
journal) and Redis (quota counters). This kernel has no ``netem``, so a
:class:`~tests.support.tcp_proxy.TcpProxy` sits in front of each store and the tests
make its link slow (a delay per chunk), black-holed, or cut (every connection closed,
new ones refused), then normal again. The app runs as :func:`app_server` runs it
(uvicorn with mutual TLS, in a thread), or as ``ensu serve`` for the SIGTERM test; the
``var/`` is prepared as in :mod:`tests.functional.conftest`, on a fresh database.

What is checked, with ``ENSU_STORE_TIMEOUT_SECONDS`` = :data:`TIMEOUT`:

1. Redis cut, black-holed, or slow beyond the quota check's bound: 503 930003 within
   the timeout; Redis back, or slow within the bound: 200 again.
2. PostgreSQL cut in the middle of traffic, black-holed, or slow beyond the timeout:
   every answer a structured 503 (930002 when the journal cannot be written, 930004
   when the database does not answer), within :data:`BOUND`, never a 500; the token
   endpoint answers 503 ``temporarily_unavailable``; once the link is back, 200 again
   within :data:`RECOVERY`, on its own.
3. Every answer is structured (``application/problem+json`` with the contract's
   members, ``Retry-After`` on a 503), and every answered call but a 930002 has its
   journal record with the same status (R-TR-2: never a 200 without its record).
4. SIGTERM to ``ensu serve`` while calls are in flight (made slow through the proxy):
   they complete 200 with their records, new connections are refused while they are
   still running, and the process exits after a complete shutdown.
5. A burst of :data:`BURST` concurrent calls against ``ENSU_MAX_IN_FLIGHT`` = 4 (made
   slow through the proxy): the excess is answered 503 930005 with ``Retry-After`` at
   once, the rest 200 (or 429), no call times out, every call is journaled.

:data:`BOUND` is what a call may take while a store fails: a check or a read of the
chain gives up after the timeout; then the journal's own attempt to record the refusal
(a pooled connection's ping, then a new connection: twice the timeout at most); plus a
second of margin for a loaded machine. A call that hangs shows as a transport timeout
at :data:`CLIENT_TIMEOUT`, far beyond.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from redis import Redis
from sqlalchemy.engine import make_url

from ensu.config import Settings
from ensu.errors import PROBLEM_JSON
from tests.conftest import REDIS_URL, _truncate_postgres, require_service
from tests.functional.conftest import (
    SIREN,
    A,
    Stack,
    Var,
    api_headers,
    app_server,
    call_records,
    free_port,
    kill_group,
    prepare,
    request_token,
    spawn_serve,
    wait_healthy,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

#: ENSU_STORE_TIMEOUT_SECONDS of the apps that meet failing stores.
TIMEOUT = 1.0
#: The longest answer while a store fails (see the module docstring).
BOUND = 3 * TIMEOUT + 1.0
#: A call still unanswered after this has hung (far beyond BOUND).
CLIENT_TIMEOUT = 20.0
#: Once a store is back, the service answers 200 again within this, on its own.
RECOVERY = 10.0
#: Between two calls refused at once, not to spin (the refusals are what is measured).
PACE = 0.01
#: The quota check's own bound on a hit (ensu.gateway.quota.COUNTER_TIMEOUT_SECONDS).
QUOTA_BOUND = 0.25
#: A Redis db of this module's own (db 15 is the tests' shared one, 14 the bench's).
REDIS_DB = 13
#: The burst: calls sent at once, against this many in flight.
BURST = 24
MAX_IN_FLIGHT = 4
#: Bounds for a broken server only; a healthy one starts and stops in a few seconds.
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
PREFIX = "/ensudocuments/v1"
LIST = f"{PREFIX}/documents"
ETAT_SANTE = f"{PREFIX}/etatSante"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "correlationId", "horodatage"}


# -- the rig: a prepared var/ on PostgreSQL, a proxy in front of each store --------------


@dataclass
class Rig:
    var: Var  # its database_url is PostgreSQL's own address (for seeding and reading)
    root: Path
    postgres: TcpProxy
    redis: TcpProxy

    @property
    def database_url(self) -> str:
        """The database through its proxy."""
        assert self.var.database_url is not None
        url = make_url(self.var.database_url).set(host="127.0.0.1", port=self.postgres.port)
        return url.render_as_string(hide_password=False)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/{REDIS_DB}"

    def settings(self, **overrides: Any) -> Settings:
        """The app's settings: both stores through their proxies."""
        values = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "store_timeout_seconds": TIMEOUT,
        }
        return self.var.settings().model_copy(update=values | overrides)

    def restore(self) -> None:
        self.postgres.pass_through()
        self.redis.pass_through()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, postgres_database: str) -> Iterator[Rig]:
    require_service("Redis", REDIS_URL)
    _truncate_postgres(postgres_database)  # the session's database: start from nothing
    root = tmp_path_factory.mktemp("strain")
    var = prepare(root / "var", database_url=postgres_database)
    postgres, redis = urlsplit(postgres_database), urlsplit(REDIS_URL)
    with (
        TcpProxy((postgres.hostname or "127.0.0.1", postgres.port or 5432)) as postgres_proxy,
        TcpProxy((redis.hostname or "127.0.0.1", redis.port or 6379)) as redis_proxy,
    ):
        yield Rig(var, root, postgres_proxy, redis_proxy)
    _forget_counters()


def _forget_counters() -> None:
    direct = urlsplit(REDIS_URL)._replace(path=f"/{REDIS_DB}").geturl()
    client = Redis.from_url(direct)
    try:
        for name in client.scan_iter(match="ensu:*:quota:*", count=1000):
            client.delete(name)
    finally:
        client.close()


@pytest.fixture(scope="module")
def app(rig: Rig) -> Iterator[Stack]:
    """The app (direct mutual TLS) on both proxies, for the module's store failures."""
    with app_server(rig.settings()) as port:
        yield Stack(rig.var, {"direct": f"https://127.0.0.1:{port}"}, rig.root)


@pytest.fixture
def restored(rig: Rig) -> Iterator[Rig]:
    """The rig, its links normal again after the test whatever happened: cut first, so
    that no connection stays waiting for an answer its black hole swallowed (the app's
    shutdown would wait for it)."""
    try:
        yield rig
    finally:
        rig.postgres.cut()
        rig.redis.cut()
        rig.restore()


# -- calls and what came back ------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    correlation_id: str
    status: int
    code: str | None
    elapsed: float
    headers: httpx.Headers
    body: bytes


def client_of(base_url: str, var: Var) -> httpx.Client:
    return httpx.Client(base_url=base_url, verify=var.context(A), timeout=CLIENT_TIMEOUT)


def list_call(client: httpx.Client, token: str, siren: str = SIREN) -> Outcome:
    """List ``siren``'s documents (reads PostgreSQL, counts in Redis, is journaled)."""
    headers = api_headers(token, A)
    started = time.monotonic()
    response = client.get(LIST, params={"siren": siren}, headers=headers)
    elapsed = time.monotonic() - started
    code = None
    if response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        code = response.json().get("code")
    return Outcome(
        headers["X-Correlation-ID"],
        response.status_code,
        code,
        elapsed,
        response.headers,
        response.content,
    )


def check_structured(outcome: Outcome) -> None:
    """A 200 with its document list, or the contract's problem document; never a 500."""
    assert outcome.status != 500, outcome.body[:300]
    assert outcome.headers.get("x-correlation-id") == outcome.correlation_id
    if outcome.status == 200:
        assert "documents" in orjson.loads(outcome.body)
        return
    assert outcome.headers["content-type"].startswith(PROBLEM_JSON), outcome.body[:300]
    problem = orjson.loads(outcome.body)
    assert set(problem) >= PROBLEM_MEMBERS, problem
    assert problem["status"] == outcome.status
    assert problem["correlationId"] == outcome.correlation_id
    assert problem["type"] == f"urn:ensu:erreur:{problem['code']}"
    if outcome.status in {429, 503}:
        assert int(outcome.headers["retry-after"]) >= 1


def until_ok(call: Callable[[], Outcome], within: float = RECOVERY) -> list[Outcome]:
    """Call until a 200 (every answer kept, the 200 last); fail past ``within``."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + within
    while not outcomes or outcomes[-1].status != 200:
        assert time.monotonic() < deadline, f"no 200 within {within} s: {summary(outcomes)}"
        if outcomes:
            time.sleep(PACE)
        outcomes.append(call())
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> list[tuple[int, str | None, float]]:
    return [(o.status, o.code, round(o.elapsed, 2)) for o in outcomes[-8:]]


@dataclass
class Traffic:
    """Threads calling in a loop, each on its own connection, until stopped."""

    base_url: str
    var: Var
    token: str
    threads: int = 2
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def count(self, condition: Callable[[Outcome], bool]) -> int:
        with self._lock:
            return sum(condition(outcome) for outcome in self.outcomes)

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        workers = [threading.Thread(target=self._run) for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        try:
            yield self
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(CLIENT_TIMEOUT + 5)
        assert not any(worker.is_alive() for worker in workers), "a client is stuck"
        assert not self.errors, f"a call failed: {self.errors[0]!r}"

    def _run(self) -> None:
        try:
            with client_of(self.base_url, self.var) as client:
                while not self._stop.is_set():
                    outcome = list_call(client, self.token)
                    with self._lock:
                        self.outcomes.append(outcome)
                    if outcome.status != 200:
                        time.sleep(PACE)
        except BaseException as exc:  # reported by running(), rather than lost in a thread
            with self._lock:
                self.errors.append(exc)


def wait_until(condition: Callable[[], bool], what: str, within: float = RECOVERY) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# -- the journal -------------------------------------------------------------------------


def journaled(var: Var) -> dict[str, list[tuple[int, str | None]]]:
    """Status and error code of every call record, by correlation id."""
    found: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
    for record in asyncio.run(call_records(var)):
        if record.correlation_id is not None:
            found[record.correlation_id].append((record.status, record.error_code))
    return found


def missing_records(var: Var, outcomes: Sequence[Outcome]) -> list[tuple[int, str | None]]:
    """The answered calls without exactly one record of their status: every call but a
    930002 (the journal could not be written, so no data left either)."""
    records = journaled(var)
    return [
        (outcome.status, outcome.code)
        for outcome in outcomes
        if outcome.code != "930002"
        and records.get(outcome.correlation_id) != [(outcome.status, outcome.code)]
    ]


def check_journaled(var: Var, outcomes: Sequence[Outcome]) -> None:
    """Every answered call has its record (waiting for those committed after the answer,
    such as a shed call's); and at least the 200s were answered."""
    assert any(outcome.status == 200 for outcome in outcomes)
    deadline = time.monotonic() + RECOVERY
    while missing := missing_records(var, outcomes):
        assert time.monotonic() < deadline, f"{len(missing)} calls not journaled: {missing[:5]}"
        time.sleep(0.1)


# -- Redis -------------------------------------------------------------------------------


def test_redis_cut_is_a_bounded_503_930003_until_it_is_back(app: Stack, restored: Rig) -> None:
    """R-Q-1 fails closed, quickly: no count, no call; the service recovers by itself."""
    with client_of(app.urls["direct"], app.var) as client:
        token = app.token("direct", A)
        before = list_call(client, token)
        assert before.status == 200, before.body[:300]
        restored.redis.cut()
        cut = [list_call(client, token) for _ in range(5)]
        restored.redis.pass_through()
        back = until_ok(lambda: list_call(client, token))
    for outcome in [before, *cut, *back]:
        check_structured(outcome)
    assert [(o.status, o.code) for o in cut] == [(503, "930003")] * 5, summary(cut)
    assert max(o.elapsed for o in cut) < TIMEOUT + 1.0, summary(cut)
    assert len(back) <= 2, summary(back)  # the next call after the cut, or the one after
    check_journaled(app.var, [before, *cut, *back])


def test_redis_black_holed_or_slow_is_503_930003_within_its_bound_200(
    app: Stack, restored: Rig
) -> None:
    """A Redis that never answers, or answers later than the quota check's bound: 503
    930003 within it (fail closed, R-Q-1); answering within it: 200."""
    with client_of(app.urls["direct"], app.var) as client:
        token = app.token("direct", A)
        restored.redis.black_hole()
        slow = [list_call(client, token) for _ in range(2)]
        restored.redis.delay(QUOTA_BOUND)  # a round trip: twice the quota check's bound
        slow += [list_call(client, token) for _ in range(2)]
        restored.redis.delay(0.02)  # a round trip well within it
        tolerable = until_ok(lambda: list_call(client, token), within=5.0)
        tolerable += [list_call(client, token) for _ in range(3)]
    for outcome in [*slow, *tolerable]:
        check_structured(outcome)
    assert [(o.status, o.code) for o in slow] == [(503, "930003")] * 4, summary(slow)
    assert max(o.elapsed for o in slow) < TIMEOUT + 1.0, summary(slow)
    assert [o.status for o in tolerable[-3:]] == [200] * 3, summary(tolerable)
    check_journaled(app.var, [*slow, *tolerable])


# -- PostgreSQL --------------------------------------------------------------------------


def test_postgres_cut_mid_traffic_is_a_bounded_503_then_recovers(app: Stack, restored: Rig) -> None:
    """The journal lives in the same database: no call is served while it is cut, each
    is refused with a structured, bounded 503, and service resumes on its own."""
    token = app.token("direct", A)
    traffic = Traffic(app.urls["direct"], app.var, token)
    with traffic.running(), client_of(app.urls["direct"], app.var) as client:
        wait_until(lambda: traffic.count(lambda o: o.status == 200) >= 5, "traffic")
        restored.postgres.cut()
        cut_at = len(traffic.outcomes)
        wait_until(lambda: traffic.count(lambda o: o.status == 503) >= 6, "refusals")
        started = time.monotonic()
        refused_token = request_token(client, A.client_id)
        token_elapsed = time.monotonic() - started
        keys = client.get("/jwks")  # a framework route: the app's own error handlers
        restored.postgres.pass_through()
        restored_at = time.monotonic()
        wait_until(lambda: traffic.outcomes[-1].status == 200, "recovery", within=RECOVERY)
        recovery = time.monotonic() - restored_at
        later = len(traffic.outcomes)
        wait_until(lambda: len(traffic.outcomes) >= later + 4, "calls after the recovery")
    outcomes = traffic.outcomes
    for outcome in outcomes:
        check_structured(outcome)
    during = [o for o in outcomes[cut_at:] if o.status != 200]
    assert {o.code for o in during} <= {"930002", "930004"}, summary(during)
    assert max(o.elapsed for o in outcomes) < BOUND, sorted(summary(outcomes), key=lambda s: -s[2])
    assert [o.status for o in outcomes[later:]] == [200] * (len(outcomes) - later)
    assert refused_token.status_code == 503, refused_token.text
    assert refused_token.json()["error"] == "temporarily_unavailable"
    assert int(refused_token.headers["retry-after"]) >= 1
    assert token_elapsed < BOUND
    assert keys.status_code == 503, keys.text
    assert keys.headers["content-type"].startswith(PROBLEM_JSON)
    assert keys.json()["code"] == "930004"
    assert recovery < RECOVERY
    check_journaled(app.var, outcomes)


def test_postgres_black_holed_or_slow_is_bounded_and_structured(app: Stack, restored: Rig) -> None:
    """A link that swallows everything, then round trips longer than the timeout: bounded
    structured 503s (no TCP error ever comes: only the app's own bounds end the wait);
    each time the link is normal again, or slow within the timeout, 200s resume."""
    token = app.token("direct", A)
    with client_of(app.urls["direct"], app.var) as client:
        before = list_call(client, token)
        restored.postgres.black_hole()
        failing = [list_call(client, token) for _ in range(2)]
        restored.postgres.pass_through()
        recovered = until_ok(lambda: list_call(client, token))
        restored.postgres.delay(0.6 * TIMEOUT)  # a round trip: 1.2 x the timeout
        failing += [list_call(client, token) for _ in range(3)]
        restored.postgres.delay(0.05)  # a round trip a tenth of the timeout
        recovered += until_ok(lambda: list_call(client, token))
        tolerable = [list_call(client, token) for _ in range(2)]
    outcomes = [before, *failing, *recovered, *tolerable]
    for outcome in outcomes:
        check_structured(outcome)
    assert before.status == 200
    assert all(o.status == 503 for o in failing), summary(failing)
    assert {o.code for o in failing} <= {"930002", "930004"}, summary(failing)
    assert max(o.elapsed for o in outcomes) < BOUND, summary(outcomes)
    assert [o.status for o in tolerable] == [200, 200], summary(tolerable)
    check_journaled(app.var, outcomes)


# -- a burst beyond capacity -------------------------------------------------------------


def test_a_burst_beyond_capacity_is_shed_at_once_not_timed_out(restored: Rig) -> None:
    """ENSU_MAX_IN_FLIGHT=4 and calls made slow by the database: the excess of a burst is
    answered 503 930005 with Retry-After at once, the rest served; all journaled."""
    settings = restored.settings(max_in_flight=MAX_IN_FLIGHT, store_timeout_seconds=2.0)
    with app_server(settings) as port:
        base_url = f"https://127.0.0.1:{port}"
        stack = Stack(restored.var, {"direct": base_url}, restored.root)
        token = stack.token("direct", A)
        restored.postgres.delay(0.1)  # each round trip 0.2 s: a call lasts a second or so
        barrier = threading.Barrier(BURST)

        def one(_: int) -> Outcome:
            with client_of(base_url, restored.var) as client:
                assert client.get(ETAT_SANTE).status_code == 200  # connected, TLS done
                barrier.wait(CLIENT_TIMEOUT)
                return list_call(client, token)

        with ThreadPoolExecutor(BURST) as pool:
            outcomes = list(pool.map(one, range(BURST)))
        restored.postgres.pass_through()
        for outcome in outcomes:
            check_structured(outcome)
        shed = [o for o in outcomes if o.code == "930005"]
        served = [o for o in outcomes if o.code != "930005"]
        assert shed, summary(outcomes)
        assert all(o.status in {200, 429} for o in served), summary(served)
        assert len(served) >= MAX_IN_FLIGHT, summary(outcomes)
        assert all(o.status == 503 for o in shed)
        # At once: quicker than any call that waited on the database.
        assert max(o.elapsed for o in shed) < min(o.elapsed for o in served), summary(outcomes)
        check_journaled(restored.var, outcomes)


# -- SIGTERM -----------------------------------------------------------------------------


def luhn_siren(rng: random.Random) -> str:
    """A SIREN that passes the Luhn check, of no seeded company."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        for check in range(10):
            candidate = [*digits, check]
            total = sum(
                (d * 2 - 9 if d * 2 > 9 else d * 2) if index % 2 else d
                for index, d in enumerate(reversed(candidate))
            )
            if total % 10 == 0:
                siren = "".join(map(str, candidate))
                if siren != SIREN:
                    return siren


@dataclass
class Serve:
    """``ensu serve`` on the rig's proxies, in its own process group."""

    rig: Rig
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "serve.log"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def start(self) -> None:
        for _ in range(3):  # a port picked free may be taken before the server binds it
            self._spawn()
            if self._ready():
                return
            self.kill()
            if "address already in use" not in self.log_tail().lower():
                break
        pytest.fail(f"`ensu serve` did not start:\n{self.log_tail()}")

    def _spawn(self) -> None:
        self.port = free_port()
        env = {name: value for name, value in os.environ.items() if not name.startswith("ENSU_")}
        env |= {
            "ENSU_VAR_DIR": str(self.rig.var.directory),
            "ENSU_DATABASE_URL": self.rig.database_url,
            "ENSU_REDIS_URL": self.rig.redis_url,
            "ENSU_STORE_TIMEOUT_SECONDS": "3",
            "ENSU_LISTEN_PORT": str(self.port),
        }
        self.process = spawn_serve([], env=env, cwd=self.root, log=self.log)

    def _ready(self) -> bool:
        assert self.process is not None
        with httpx.Client(verify=self.rig.var.context(A), timeout=2.0) as client:
            return wait_healthy(
                self.process, client, self.base_url + ETAT_SANTE, timeout=START_TIMEOUT
            )

    def kill(self) -> None:
        if self.process is None:
            return
        kill_group(self.process, timeout=EXIT_TIMEOUT)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_the_calls_in_flight_and_takes_no_new_one(
    restored: Rig, tmp_path: Path
) -> None:
    """Calls in flight (their queries held by the proxy) complete 200 with their records;
    the port is closed while they still run; the process exits 0."""
    server = Serve(restored, tmp_path)
    sirens = [luhn_siren(random.Random(secrets.randbits(32))) for _ in range(4)]
    try:
        server.start()
        with client_of(server.base_url, restored.var) as client:
            token = request_token(client, A.client_id).json()["access_token"]
            assert list_call(client, token).status == 200
        restored.postgres.watch(*(siren.encode() for siren in sirens))
        restored.postgres.delay(0.15)  # each round trip 0.3 s: a call lasts seconds

        def one(siren: str) -> Outcome:
            with client_of(server.base_url, restored.var) as client:
                return list_call(client, token, siren)

        with ThreadPoolExecutor(len(sirens)) as pool:
            futures = [pool.submit(one, siren) for siren in sirens]
            # In flight: each call's own query (its SIREN) has reached the database.
            wait_until(lambda: all(restored.postgres.seen(s.encode()) for s in sirens), "in flight")
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            wait_until(lambda: refused(server.port), "the port to close", within=5.0)
            still_running = sum(not future.done() for future in futures)
            with (
                pytest.raises(httpx.ConnectError),
                client_of(server.base_url, restored.var) as late,
            ):
                late.get(ETAT_SANTE)
            outcomes = [future.result() for future in futures]
        exit_code = server.process.wait(EXIT_TIMEOUT)
    finally:
        restored.restore()
        server.kill()
    assert still_running > 0, "the calls ended before the port closed: nothing was tested"
    for outcome in outcomes:
        check_structured(outcome)
    assert [o.status for o in outcomes] == [200] * len(sirens), summary(outcomes)
    # Exited once shut down: uvicorn re-raises the SIGTERM it caught after a graceful
    # shutdown (so the parent sees it), unless the process handles it itself.
    assert exit_code in {0, -signal.SIGTERM}, server.log_tail()
    assert "Application shutdown complete." in server.log_tail()
    check_journaled(restored.var, outcomes)
