"""The run: prepare, start the servers, check each arm, warm up, interleave, measure."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench import procstat
from bench.arms import (
    ARMS,
    ASGI,
    ENSU_REDIS,
    ENSU_SQLITE,
    NGINX,
    STARLETTE,
    TOKEN_BODY,
    Arm,
    load_for,
    metadata_path,
    proxy_headers,
)
from bench.load import LatencyResult, Load, run_h2load, run_wrk
from bench.report import ArmResult, Sample
from bench.servers import (
    Redis,
    Server,
    forget_quota_counters,
    redis_service,
    request,
    spawn_nginx,
    spawn_uvicorn,
    stop,
    wait_ready,
)
from bench.tools import BenchError, Tools
from bench.world import World, prepare

HEALTH = "/ensudocuments/v1/etatSante"
#: A token is minted again after this long (tokens live an hour in the bench settings).
TOKEN_REFRESH_SECONDS = 1800.0
#: The latency runs aim at this fraction of each arm's maximum rate.
LATENCY_LOAD = 0.8
QUOTA_PREFIX = "ensu:sandbox:quota:"
CHECK_CORRELATION_ID = "0b8d4c1e-7c53-4f0e-9d0a-5a3e2b1c4d6f"


@dataclass(frozen=True, slots=True)
class Options:
    duration: int
    rounds: int
    connections: int
    warmup: int
    latency_seconds: int
    output_dir: Path


@dataclass(frozen=True, slots=True)
class Setup:
    """What the report says about the run's fixture."""

    world: World
    redis: Redis


@dataclass
class Bench:
    """The servers of one run and what the arms need to send."""

    options: Options
    tools: Tools
    world: World
    redis: Redis
    workdir: Path
    servers: dict[str, Server] = field(default_factory=dict)
    reference_body: bytes = b""
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def token(self, server: str) -> str:
        """A valid access token of ``server``, minted through ``POST /token``."""
        cached = self.tokens.get(server)
        if cached is not None and time.monotonic() - cached[1] < TOKEN_REFRESH_SECONDS:
            return cached[0]
        headers = proxy_headers(self.world) | {"Content-Type": "application/x-www-form-urlencoded"}
        reply = request(self.servers[server].port, "POST", "/token", headers, TOKEN_BODY)
        if reply.status != 200:
            raise BenchError(f"no token from {server}: {reply.status} {reply.body!r}")
        token: str = orjson.loads(reply.body)["access_token"]
        self.tokens[server] = (token, time.monotonic())
        return token

    def load(self, arm: Arm) -> Load:
        # The references get the very headers of the API's arms (a real token included).
        server = arm.server if not arm.reference else ENSU_SQLITE
        return load_for(arm.endpoint, self.world, self.token(server), reference=arm.reference)

    def check(self, arm: Arm) -> None:
        """One request of ``arm``, which must succeed with the expected kind of answer."""
        load = self.load(arm)
        headers = dict(load.headers)
        if load.correlation_id:
            headers["X-Correlation-ID"] = CHECK_CORRELATION_ID
        path = load.paths[0]
        reply = request(self.servers[arm.server].port, load.method, path, headers, load.body)
        wanted = "application/pdf" if arm.endpoint == "content" else "application/json"
        if reply.status != 200 or not reply.headers.get("content-type", "").startswith(wanted):
            raise BenchError(f"{arm.key}: {reply.status} on {path}: {reply.body[:500]!r}")
        if arm.reference and reply.body != self.reference_body:
            raise BenchError(f"{arm.key} does not answer the reference bytes")

    def measure(self, arm: Arm, seconds: int) -> Sample:
        """One wrk run of ``arm`` and what the server spent on it."""
        server = self.servers[arm.server]
        load = self.load(arm)
        _alive(server)
        before = self._readings(arm, server)
        result = run_wrk(
            tools=self.tools,
            port=server.port,
            load=load,
            seconds=seconds,
            connections=self.options.connections,
            script=self.workdir / "load.lua",
        )
        _alive(server)
        spent = self._readings(arm, server, after=True).minus(before)
        rss = max(procstat.rss_bytes(pid) for pid in procstat.worker_pids(server.pid))
        return Sample(
            rate=result.rate,
            requests=result.requests,
            seconds=result.seconds,
            cpu_seconds=spent.cpu,
            wall_seconds=spent.wall,
            cpu_wait_seconds=spent.wait,
            rss_bytes=rss,
            bad_status=result.bad_status,
            socket_errors=result.socket_errors,
            failures=result.failures,
            journal_records=spent.journal[0] if spent.journal else None,
            journal_commits=spent.journal[1] if spent.journal else None,
            redis_cpu_seconds=spent.redis_cpu,
            saturated_p50_ms=result.p50_ms,
            saturated_p99_ms=result.p99_ms,
        )

    def _readings(self, arm: Arm, server: Server, *, after: bool = False) -> Readings:
        """The counters; the journal's are read (a SIGUSR1 the server answers) before the
        CPU at the start and after it at the end, so that the dump stays out of the run."""
        stats = server.journal_stats() if not after else None
        redis_cpu = None
        if arm.server == ENSU_REDIS and self.redis.pid is not None:
            redis_cpu = procstat.cpu_seconds(self.redis.pid)
        cpu = procstat.tree_cpu_seconds(server.pid)
        wait = procstat.runqueue_wait_seconds(server.pid)
        wall = time.monotonic()
        if after:
            stats = server.journal_stats()
        return Readings(
            cpu=cpu,
            wait=wait,
            wall=wall,
            redis_cpu=redis_cpu,
            journal=(stats["records"], stats["commits"]) if stats else None,
        )

    def latency(self, arm: Arm, rate: float) -> LatencyResult:
        assert self.tools.h2load is not None
        return run_h2load(
            h2load=self.tools.h2load,
            tools=self.tools,
            port=self.servers[arm.server].port,
            load=self.load(arm),
            rate=rate * LATENCY_LOAD,
            seconds=self.options.latency_seconds,
            connections=self.options.connections,
            workdir=self.workdir,
        )


def _alive(server: Server) -> None:
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} stopped during the run:\n{server.log_tail()}")


@dataclass(frozen=True, slots=True)
class Readings:
    """Cumulative counters of a server (and of Redis) at one instant."""

    cpu: float
    wait: float
    wall: float
    redis_cpu: float | None
    #: The journal writer's (records, commits).
    journal: tuple[int, int] | None

    def minus(self, earlier: Readings) -> Readings:
        """What was spent between ``earlier`` and these readings."""
        redis_cpu = None
        if self.redis_cpu is not None and earlier.redis_cpu is not None:
            redis_cpu = self.redis_cpu - earlier.redis_cpu
        journal = None
        if self.journal is not None and earlier.journal is not None:
            journal = (
                self.journal[0] - earlier.journal[0],
                self.journal[1] - earlier.journal[1],
            )
        return Readings(
            cpu=self.cpu - earlier.cpu,
            wait=self.wait - earlier.wait,
            wall=self.wall - earlier.wall,
            redis_cpu=redis_cpu,
            journal=journal,
        )


def start_servers(bench: Bench, stack: ExitStack, console: Console) -> None:
    """Every server, up and answering, stopped when ``stack`` closes."""
    for name, quota in ((ENSU_SQLITE, "sqlite"), (ENSU_REDIS, "redis")):
        var_dir = bench.workdir / f"var-{name}"
        config: dict[str, Any] = {
            "kind": "ensu",
            "var_dir": str(var_dir),
            "quota": quota,
            "redis_url": bench.redis.url if quota == "redis" else None,
        }
        _keep(bench, stack, spawn_uvicorn(name, config, tools=bench.tools, workdir=bench.workdir))
    for name in (ENSU_SQLITE, ENSU_REDIS):
        wait_ready(bench.servers[name], HEALTH)
    first = metadata_path(bench.world.idensua[0])
    reply = request(bench.servers[ENSU_SQLITE].port, "GET", first, _check_headers(bench))
    if reply.status != 200:
        raise BenchError(f"the metadata route answered {reply.status}: {reply.body[:500]!r}")
    bench.reference_body = reply.body
    body_file = bench.workdir / "reference.json"
    body_file.write_bytes(reply.body)
    _keep(bench, stack, spawn_nginx(reply.body, tools=bench.tools, workdir=bench.workdir))
    for name, kind in ((ASGI, "asgi"), (STARLETTE, "starlette")):
        config = {"kind": kind, "body_file": str(body_file)}
        _keep(bench, stack, spawn_uvicorn(name, config, tools=bench.tools, workdir=bench.workdir))
    for name in (NGINX, ASGI, STARLETTE):
        wait_ready(bench.servers[name], first)
    console.log("servers up: " + ", ".join(f"{n} (pid {s.pid})" for n, s in bench.servers.items()))


def _keep(bench: Bench, stack: ExitStack, server: Server) -> None:
    bench.servers[server.name] = server
    stack.callback(stop, server.process)


def _check_headers(bench: Bench) -> dict[str, str]:
    load = load_for("metadata", bench.world, bench.token(ENSU_SQLITE))
    return dict(load.headers) | {"X-Correlation-ID": CHECK_CORRELATION_ID}


def interleaved(rounds: int) -> Iterator[tuple[int, Arm]]:
    """Each round runs every arm once; the order rotates so no arm always goes first."""
    for number in range(rounds):
        offset = (number * 3) % len(ARMS)
        for arm in ARMS[offset:] + ARMS[:offset]:
            yield number, arm


def run_arms(bench: Bench, console: Console) -> dict[str, ArmResult]:
    """Check, warm up, measure round by round, then the latency at 80 % of each maximum."""
    options = bench.options
    results = {arm.key: ArmResult(arm) for arm in ARMS}
    steps = len(ARMS) * (options.rounds + (1 if options.warmup else 0) + 1)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("checking the arms", total=steps)
        for arm in ARMS:
            bench.check(arm)
            if options.warmup:
                progress.update(task, description=f"warm-up · {arm.key}")
                bench.measure(arm, options.warmup)
                progress.advance(task)
        for number, arm in interleaved(options.rounds):
            progress.update(task, description=f"round {number + 1}/{options.rounds} · {arm.key}")
            results[arm.key].samples.append(bench.measure(arm, options.duration))
            progress.advance(task)
        for arm in ARMS:
            progress.update(task, description=f"latency at 80 % · {arm.key}")
            _latency(bench, results[arm.key])
            progress.advance(task)
    return results


def _latency(bench: Bench, result: ArmResult) -> None:
    if bench.tools.h2load is None:
        result.latency_note = "h2load is not installed (bash bench/tools.sh): not measured"
        return
    try:
        result.latency = bench.latency(result.arm, result.rate)
    except BenchError as error:
        result.latency_note = f"h2load failed: {error}"


def run(options: Options, tools: Tools, console: Console) -> tuple[dict[str, ArmResult], Setup]:
    """The whole measurement, in a temporary folder removed at the end."""
    with tempfile.TemporaryDirectory(prefix="ensu-bench-") as temporary, ExitStack() as stack:
        workdir = Path(temporary)
        with console.status("preparing a temporary var/ (database, PKI, documents) ..."):
            world = prepare(workdir / f"var-{ENSU_SQLITE}")
            shutil.copytree(world.var_dir, workdir / f"var-{ENSU_REDIS}")
        redis = stack.enter_context(redis_service(tools=tools, workdir=workdir))
        forget_quota_counters(redis.url, QUOTA_PREFIX)
        bench = Bench(options, tools, world, redis, workdir)
        with console.status("starting the servers ..."):
            start_servers(bench, stack, console)
        setup = Setup(world=world, redis=redis)
        return run_arms(bench, console), setup
