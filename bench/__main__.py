"""``python -m bench`` (``make bench``): see :mod:`bench` for what is measured and how."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench import floors, report, runner
from bench.load import LOAD_CORE
from bench.servers import SERVER_CORE
from bench.tools import BenchError, Tools, ensure_tools, version_of
from bench.world import QUOTA_PER_MINUTE

RESULTS = Path(__file__).with_name("results")

app = typer.Typer(add_completion=False)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine(tools: Tools) -> dict[str, Any]:
    packages = ("fastapi", "starlette", "uvicorn", "httptools", "uvloop", "sqlalchemy", "redis")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in packages},
        "tools": {
            "wrk": version_of([tools.wrk, "-v"]),
            "h2load": version_of([tools.h2load, "--version"]) if tools.h2load else None,
            "nginx": version_of([tools.nginx, "-v"]),
        },
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def method(options: runner.Options, tools: Tools, setup: runner.Setup) -> list[str]:
    """The header printed above the table and kept in the JSON: how the figures were made."""
    world, redis = setup.world, setup.redis
    pinning = (
        f"server pinned to core {SERVER_CORE}, load generator (wrk -t1 -c{options.connections})"
        f" to core {LOAD_CORE} (taskset)"
        if tools.taskset
        else "fewer than two cores: nothing pinned, server and load share the CPU"
    )
    latency = (
        f"p50/p99: h2load --rps at 80 % of each arm's max rate for {options.latency_seconds} s"
        " (wrk2 is not installed; one correlation id per h2load run)"
        if tools.h2load
        else "p50/p99: n/a, h2load is not installed (bash bench/tools.sh installs it)"
    )
    return [
        f"{pinning}; one worker per server; all traffic on 127.0.0.1.",
        "The app runs in proxy mode (plain HTTP, trusted proxy 127.0.0.1/32): wrk cannot present"
        " a client certificate, so it sends what nginx forwards after mutual TLS"
        " (X-SSL-Client-Cert, X-Forwarded-For). C0-C2 receive the same headers. No TLS measured.",
        "C0-C2 answer the metadata route's JSON bytes. API calls carry a bearer token,"
        " ID_Teleservice and a fresh X-Correlation-ID; paths rotate over"
        f" {len(world.idensua)} documents of {len(world.sirens)} subjects"
        f" (PDFs of {world.pdf_bytes / 1024:.0f} KiB).",
        f"{options.rounds} interleaved round(s) of {options.duration} s per arm"
        f" (after a {options.warmup} s warm-up); req/s is the mean of the rounds, ± their"
        " spread (max-min)/mean; ÷Cn = req/s divided by reference Cn's.",
        "CPU µs/req: server utime+stime (/proc/<pid>/stat, with children) over the run /"
        " requests; CPU %: of one core; RSS: VmRSS per worker after the run.",
        latency + ".",
        "rec/commit: journal records per commit (group commit), from the journal writer's"
        " counters read inside the server process.",
        f"Quota: {QUOTA_PER_MINUTE:,} calls/min, counted but never reached; Redis: {redis.url}"
        f" ({'a private redis-server' if redis.own else 'the machine’s Redis'}; its CPU per"
        " request, in the notes, counts whatever else it serves meanwhile). POST /token:"
        " the OAuth throttle (20/s per IP and client) is lifted for the bench.",
        "uvicorn: httptools, no access log (ensu serve logs each request at info level).",
    ]


def _load_average() -> float:
    """The one-minute load average: other processes competing for the two cores."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def _load_line(before: float, after: float) -> str:
    line = f"Load average (1 min) before/after the run: {before:.2f} / {after:.2f}"
    if before > 1.0:
        line += " - other processes were busy on this machine: the figures are noisy"
    return line + "."


@app.command()
def main(
    *,
    duration: Annotated[
        int, typer.Option(min=1, max=600, help="Seconds of load per arm and round.")
    ] = 5,
    rounds: Annotated[
        int, typer.Option(min=1, max=20, help="Interleaved rounds over every arm.")
    ] = 2,
    connections: Annotated[
        int, typer.Option(min=1, max=1024, help="Concurrent connections of the load generator.")
    ] = 64,
    latency_seconds: Annotated[
        int, typer.Option(min=1, max=600, help="Seconds of each fixed-rate latency run.")
    ] = 3,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke mode: 1 s per arm, one round, no warm-up.")
    ] = False,
    output_dir: Annotated[Path, typer.Option(help="Where the JSON results are written.")] = RESULTS,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when an arm falls below its floor (bench/floors.py): the CI smoke run.",
        ),
    ] = False,
) -> None:
    """Measure the API against references served on the same core in the same run."""
    began, started_at = time.monotonic(), dt.datetime.now(dt.UTC)
    console = Console()
    if not console.is_terminal:  # piped or logged: wide enough for the table
        console = Console(width=160)
    load_before = _load_average()
    options = runner.Options(
        duration=1 if quick else duration,
        rounds=1 if quick else rounds,
        connections=connections,
        warmup=0 if quick else 1,
        latency_seconds=1 if quick else latency_seconds,
        output_dir=output_dir,
    )
    try:
        tools = ensure_tools(console)
        results, setup = runner.run(options, tools, console)
    except BenchError as error:
        console.print(f"[red]bench failed: {error}")
        raise typer.Exit(1) from error
    header = [*method(options, tools, setup), _load_line(load_before, _load_average())]
    report.print_report(console, results, header)
    total = time.monotonic() - began
    context = {
        "started_at": started_at.isoformat(),
        "total_seconds": round(total, 1),
        "options": asdict(options) | {"output_dir": str(options.output_dir)},
        "machine": machine(tools),
        "method": header,
        "fixture": {
            "documents": len(setup.world.idensua),
            "subjects": len(setup.world.sirens),
            "pdf_bytes": setup.world.pdf_bytes,
        },
    }
    path = report.write_json(output_dir, results=results, context=context)
    console.print(f"results: {path}  ·  total time {total:.0f} s")
    if check:
        problems = floors.regressions({key: result.rate for key, result in results.items()})
        for problem in problems:
            console.print(f"[red]regression: {problem}")
        if problems:
            raise typer.Exit(1)
        console.print(f"floors hold ({len(floors.FLOORS)} arms)")


if __name__ == "__main__":
    app()
