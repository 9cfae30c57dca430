"""Start, probe and stop the bench's server processes (all on 127.0.0.1, server core).

Each server is a child process in its own session, stopped with SIGTERM (then SIGKILL
after a bound) by its own process group id at the end of the run, whatever happens.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.tools import BenchError, Tools

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SERVER_CORE = 0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
STATS_TIMEOUT = 5.0
PROBE_TIMEOUT = 10.0
#: The Redis of this machine kind, and the database the bench may use.
SHARED_REDIS = ("127.0.0.1", 6379)
REDIS_DB = 14


@dataclass
class Server:
    """A running server: its process (the one measured), port, and log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    stats_file: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def journal_stats(self) -> dict[str, int] | None:
        """The journal writer's counters (``ensu`` servers only), via SIGUSR1."""
        if self.stats_file is None:
            return None
        self.stats_file.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + STATS_TIMEOUT
        while time.monotonic() < deadline:
            if self.stats_file.exists():
                stats: dict[str, int] = json.loads(self.stats_file.read_text())
                return stats
            time.sleep(0.01)
        return None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def request(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
) -> Reply:
    """One HTTP/1.1 request to 127.0.0.1:``port``."""
    connection = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return Reply(
            response.status,
            {key.lower(): value for key, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def wait_ready(server: Server, probe: str) -> None:
    """Return once ``server`` answers ``GET probe`` (any status); raise if it died."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited during start-up:\n{server.log_tail()}")
        with suppress(OSError, http.client.HTTPException):
            request(server.port, "GET", probe, {})
            return
        time.sleep(0.05)
    raise BenchError(f"{server.name} did not answer within {START_TIMEOUT:.0f} s")


def _spawn(
    command: list[str], log: Path, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ENSU_")}
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=pass_fds,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a bound; stragglers of its own group are killed."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def spawn_uvicorn(name: str, config: dict[str, Any], *, tools: Tools, workdir: Path) -> Server:
    """Start ``python -m bench.serve`` with ``config`` on a socket bound here; the caller
    waits for it (:func:`wait_ready`) and stops it (:func:`stop`)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    port: int = listener.getsockname()[1]
    stats_file = workdir / f"{name}.stats.json" if config["kind"] == "ensu" else None
    config = config | {"fd": listener.fileno(), "stats_file": str(stats_file)}
    config_file = workdir / f"{name}.json"
    config_file.write_text(json.dumps(config))
    command = tools.pinned(SERVER_CORE, [sys.executable, "-m", "bench.serve", str(config_file)])
    log = workdir / f"{name}.log"
    try:
        process = _spawn(command, log, pass_fds=(listener.fileno(),))
    finally:
        listener.close()  # the child holds its own copy
    return Server(name, process, port, log, stats_file)


NGINX_STATIC = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    underscores_in_headers on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        default_type application/json;
        location / {{ try_files /body.json =404; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def spawn_nginx(body: bytes, *, tools: Tools, workdir: Path) -> Server:
    """C0: nginx (one worker) answering ``body`` from a static file to every GET."""
    prefix = workdir / "nginx"
    (prefix / "www").mkdir(parents=True, exist_ok=True)
    for folder in (workdir, prefix, prefix / "www"):
        folder.chmod(0o755)  # nginx's workers run as nobody when started as root
    (prefix / "www" / "body.json").write_bytes(body)
    (prefix / "www" / "body.json").chmod(0o644)
    port = _free_port()
    config = prefix / "nginx.conf"
    config.write_text(NGINX_STATIC.format(prefix=prefix, port=port))
    command = [tools.nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)]
    log = prefix / "stderr.log"
    process = _spawn(tools.pinned(SERVER_CORE, command), log)
    return Server("nginx", process, port, prefix / "error.log")


@dataclass(frozen=True, slots=True)
class Redis:
    url: str
    #: The redis-server process, for its CPU time (None when it cannot be read).
    pid: int | None
    own: bool


def _redis_pid(host: str, port: int) -> int | None:
    try:
        client = redis.Redis(host=host, port=port, socket_timeout=2)
        info: dict[str, Any] = client.info("server")
        client.close()
    except redis.RedisError:
        return None
    pid = info.get("process_id")
    return int(pid) if pid is not None and Path(f"/proc/{pid}").exists() else None


def _answers(host: str, port: int) -> bool:
    try:
        client = redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1)
        answered = bool(client.ping())
        client.close()
    except redis.RedisError:
        return False
    return answered


@contextmanager
def redis_service(*, tools: Tools, workdir: Path) -> Iterator[Redis]:
    """The machine's Redis (database 14); else a private redis-server for the run."""
    host, port = SHARED_REDIS
    if _answers(host, port):
        yield Redis(f"redis://{host}:{port}/{REDIS_DB}", _redis_pid(host, port), own=False)
        return
    if tools.redis_server is None:
        raise BenchError("no Redis on 127.0.0.1:6379 and no redis-server: bash bench/tools.sh")
    port = _free_port()
    command = [tools.redis_server, "--bind", HOST, "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    process = _spawn(command, workdir / "redis.log")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(HOST, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"redis-server did not start: see {workdir / 'redis.log'}")
            time.sleep(0.05)
        yield Redis(f"redis://{HOST}:{port}/{REDIS_DB}", process.pid, own=True)
    finally:
        stop(process)


def forget_quota_counters(url: str, prefix: str) -> int:
    """Delete the counters under ``prefix`` left in Redis by an earlier run (same minute)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
