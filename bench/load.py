"""The load: wrk at full speed (throughput) and h2load at a fixed rate (latency).

wrk runs a generated Lua script: it prepares the arm's requests once (rotating over the
arm's paths, each with the arm's headers and its own UUID in ``X-Correlation-ID``) and
sends them in turn; its ``done`` hook prints one JSON line that :func:`run_wrk` reads.
h2load paces each connection (``--rps``) and logs every request's latency, from which
p50 and p99 are computed.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.tools import BenchError, Tools

LOAD_CORE = 1
#: Beyond the run itself: start-up and the summary; wrk and h2load stop by themselves.
GRACE_SECONDS = 30.0
MARKER = "BENCH_JSON "


@dataclass(frozen=True, slots=True)
class Load:
    """What to send: method, paths to rotate over, headers, body."""

    method: str
    paths: tuple[str, ...]
    headers: Mapping[str, str]
    body: bytes = b""
    #: Add a fresh ``X-Correlation-ID`` UUID to every request (the API's arms).
    correlation_id: bool = True
    #: Count failed answers by status (costs wrk a Lua call per response).
    count_failures: bool = False


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    #: Responses with a status >= 400 (wrk's ``errors.status``).
    bad_status: int
    #: Connect, read, write errors and timeouts.
    socket_errors: int
    p50_ms: float
    p99_ms: float
    #: Failed answers by status, when the load counts them.
    failures: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _lua_string(text: str) -> str:
    """A Lua string literal: JSON's escapes of ASCII text are Lua's too."""
    if not text.isascii():
        raise BenchError(f"non-ASCII text in a request: {text!r}")
    return json.dumps(text)


#: Requests prepared in advance, each with its own correlation id: formatting a request in
#: Lua for every send would make wrk, not the server, the bottleneck of the fast arms.
PREPARED_REQUESTS = 1024

LUA = """\
local paths = {{{paths}}}
local method = {method}
local body = {body}
local headers = {{{headers}}}
local fresh_id = {fresh}
local total = fresh_id and {prepared} or #paths
local requests = {{}}
local index = 0
local random, format = math.random, string.format

local function uuid4()
  return format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    random(0, 65535), random(0, 65535), random(0, 65535), random(0, 4095),
    random(32768, 49151), random(0, 65535), random(0, 65535), random(0, 65535))
end

init = function(args)
  math.randomseed(os.time())
  for i = 1, total do
    if fresh_id then
      headers["X-Correlation-ID"] = uuid4()
    end
    requests[i] = wrk.format(method, paths[(i - 1) % #paths + 1], headers, body)
  end
end

request = function()
  index = index % total + 1
  return requests[index]
end

{response}
local threads = {{}}
setup = function(thread)
  table.insert(threads, thread)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local counted = {{}}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("failures") or {{}}) do
      counted[code] = (counted[code] or 0) + n
    end
  end
  local parts = {{}}
  for code, n in pairs(counted) do
    table.insert(parts, format('"%d":%d', code, n))
  end
  io.write(format(
    '{marker}{{"requests":%d,"duration_us":%d,"status":%d,"socket":%d,"p50":%d,"p99":%d,' ..
    '"failures":{{%s}}}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ",")))
end
"""
#: Counts the failed answers by status, in the thread (read by ``done``). Only for the
#: API's arms: a Lua call per response would slow wrk down on the fast references.
RESPONSE_HOOK = """\
failures = {}
response = function(status, headers, body)
  if status >= 400 then
    failures[status] = (failures[status] or 0) + 1
  end
end
"""


def wrk_script(load: Load) -> str:
    """The Lua script that sends ``load``."""
    headers = ", ".join(
        f"[{_lua_string(name)}] = {_lua_string(value)}" for name, value in load.headers.items()
    )
    body = _lua_string(load.body.decode()) if load.body else "nil"
    return LUA.format(
        paths=", ".join(_lua_string(path) for path in load.paths),
        method=_lua_string(load.method),
        body=body,
        headers=headers,
        fresh="true" if load.correlation_id else "false",
        prepared=PREPARED_REQUESTS,
        response=RESPONSE_HOOK if load.count_failures else "",
        marker=MARKER,
    )


def run_wrk(
    *,
    tools: Tools,
    port: int,
    load: Load,
    seconds: float,
    connections: int,
    script: Path,
) -> WrkResult:
    """wrk with one thread on the load core for ``seconds``, at full speed."""
    script.write_text(wrk_script(load))
    duration = max(1, round(seconds))
    command = [tools.wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    command += ["-s", str(script), f"http://127.0.0.1:{port}"]
    done = subprocess.run(
        tools.pinned(LOAD_CORE, command),
        capture_output=True,
        text=True,
        timeout=duration + GRACE_SECONDS,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(line.removeprefix(MARKER))
    return WrkResult(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        bad_status=figures["status"],
        socket_errors=figures["socket"],
        p50_ms=figures["p50"] / 1000,
        p99_ms=figures["p99"] / 1000,
        failures={int(code): count for code, count in figures["failures"].items()},
    )


@dataclass(frozen=True, slots=True)
class LatencyResult:
    target_rate: float
    achieved_rate: float
    requests: int
    bad_status: int
    p50_ms: float
    p99_ms: float


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted ``values``."""
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


def run_h2load(
    *,
    h2load: str,
    tools: Tools,
    port: int,
    load: Load,
    rate: float,
    seconds: float,
    connections: int,
    workdir: Path,
) -> LatencyResult:
    """h2load over HTTP/1.1 at ``rate`` requests per second in all, for ``seconds``.

    h2load cannot vary a header per request, so one correlation id serves the whole run
    (the API only checks its form).
    """
    uris = workdir / "uris.txt"
    uris.write_text("".join(f"http://127.0.0.1:{port}{path}\n" for path in load.paths))
    log = workdir / "h2load.log"
    log.unlink(missing_ok=True)
    connections = max(1, min(connections, math.floor(rate)))
    command = [h2load, "--h1", "-t1", f"-c{connections}", "-m1", f"-D{max(1, round(seconds))}"]
    command += [f"--rps={rate / connections:.3f}", f"--log-file={log}", f"-i{uris}"]
    headers = dict(load.headers)
    if load.correlation_id:
        headers["X-Correlation-ID"] = "6f1c3c7e-9a0b-4c55-8f6e-2d4b1a7e9c01"
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if load.body:
        body = workdir / "body.bin"
        body.write_bytes(load.body)
        command += ["-d", str(body)]
    done = subprocess.run(
        tools.pinned(LOAD_CORE, command),
        capture_output=True,
        text=True,
        timeout=seconds + GRACE_SECONDS,
        check=False,
    )
    if done.returncode != 0 or not log.exists():
        raise BenchError(f"h2load failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return _latency(log, done.stdout, rate=rate)


def _latency(log: Path, output: str, *, rate: float) -> LatencyResult:
    """p50/p99 from h2load's per-request log (start µs, status, duration µs)."""
    durations: list[float] = []
    bad = 0
    for row in log.read_text().splitlines():
        fields = row.split("\t")
        if len(fields) >= 3:
            durations.append(int(fields[2]) / 1000)
            bad += int(fields[1]) >= 400
    if not durations:
        raise BenchError(f"h2load completed no request:\n{output}")
    durations.sort()
    achieved = re.search(r"finished in [^,]+, ([0-9.]+) req/s", output)
    return LatencyResult(
        target_rate=rate,
        achieved_rate=float(achieved.group(1)) if achieved else 0.0,
        requests=len(durations),
        bad_status=bad,
        p50_ms=percentile(durations, 0.50),
        p99_ms=percentile(durations, 0.99),
    )
