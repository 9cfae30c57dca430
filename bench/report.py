"""The figures of a run: per-arm aggregates, the printed table, the JSON file."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bench.arms import REFERENCES, Arm
from bench.load import LatencyResult

MIB = 1024 * 1024
#: Below this share of its core, a server was not what limited the arm.
SATURATED_PERCENT = 85.0
#: A latency run that reached less than this share of its target rate is flagged.
LATENCY_SHORTFALL = 0.95


@dataclass(frozen=True, slots=True)
class Sample:
    """One wrk run of one arm."""

    rate: float
    requests: int
    seconds: float
    #: Server CPU (utime + stime, process and children) over the run.
    cpu_seconds: float
    wall_seconds: float
    #: Time the server was runnable but another process had its core (schedstat).
    cpu_wait_seconds: float
    rss_bytes: int
    bad_status: int
    socket_errors: int
    #: Failed answers by status (the API's arms only).
    failures: dict[int, int]
    journal_records: int | None
    journal_commits: int | None
    redis_cpu_seconds: float | None
    #: wrk's own latency at full speed (saturation: queueing, not service time).
    saturated_p50_ms: float
    saturated_p99_ms: float


@dataclass
class ArmResult:
    arm: Arm
    samples: list[Sample] = field(default_factory=list)
    latency: LatencyResult | None = None
    latency_note: str = ""

    @property
    def rate(self) -> float:
        """Mean requests per second over the rounds."""
        return sum(s.rate for s in self.samples) / len(self.samples) if self.samples else 0.0

    @property
    def spread(self) -> float:
        """(max - min) / mean of the rounds' rates: how much the rounds disagree."""
        rates = [s.rate for s in self.samples]
        return (max(rates) - min(rates)) / self.rate if self.rate else 0.0

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.samples)

    @property
    def cpu_us_per_request(self) -> float:
        cpu = sum(s.cpu_seconds for s in self.samples)
        return cpu / self.requests * 1e6 if self.requests else 0.0

    @property
    def cpu_percent(self) -> float:
        wall = sum(s.wall_seconds for s in self.samples)
        return sum(s.cpu_seconds for s in self.samples) / wall * 100 if wall else 0.0

    @property
    def cpu_wait_percent(self) -> float:
        wall = sum(s.wall_seconds for s in self.samples)
        return sum(s.cpu_wait_seconds for s in self.samples) / wall * 100 if wall else 0.0

    @property
    def rss_mib(self) -> float:
        return max((s.rss_bytes for s in self.samples), default=0) / MIB

    @property
    def errors(self) -> int:
        return sum(s.bad_status + s.socket_errors for s in self.samples)

    @property
    def records_per_commit(self) -> float | None:
        records = [s.journal_records for s in self.samples if s.journal_records is not None]
        commits = [s.journal_commits for s in self.samples if s.journal_commits is not None]
        if not records or not sum(commits):
            return None
        return sum(records) / sum(commits)

    @property
    def redis_us_per_request(self) -> float | None:
        cpu = [s.redis_cpu_seconds for s in self.samples if s.redis_cpu_seconds is not None]
        return sum(cpu) / self.requests * 1e6 if cpu and self.requests else None

    def summary(self, references: dict[str, float]) -> dict[str, Any]:
        return {
            "requests_per_second": round(self.rate, 1),
            "spread": round(self.spread, 4),
            "ratios": {key: round(self.rate / rate, 4) for key, rate in references.items()},
            "cpu_us_per_request": round(self.cpu_us_per_request, 1),
            "server_cpu_percent": round(self.cpu_percent, 1),
            "server_cpu_wait_percent": round(self.cpu_wait_percent, 1),
            "rss_mib_per_worker": round(self.rss_mib, 1),
            "errors": self.errors,
            "journal_records_per_commit": self.records_per_commit,
            "redis_cpu_us_per_request": self.redis_us_per_request,
            "p50_ms_at_80_percent": self.latency.p50_ms if self.latency else None,
            "p99_ms_at_80_percent": self.latency.p99_ms if self.latency else None,
        }


def reference_rates(results: dict[str, ArmResult]) -> dict[str, float]:
    return {arm.key: results[arm.key].rate for arm in REFERENCES if results[arm.key].rate}


def _ratio(rate: float, reference: float | None) -> str:
    return f"{rate / reference:.2f}" if reference else "n/a"


def _optional(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def table(results: dict[str, ArmResult]) -> Table:
    """One row per arm: throughput, ratios to the references, cost, latency."""
    references = reference_rates(results)
    title = "ENSU Documents: requests per second on one server core"
    grid = Table(title=title, title_justify="left")
    for name in ("arm", "quota", "req/s", "±"):
        grid.add_column(name, justify="left" if name in ("arm", "quota") else "right")
    for arm in REFERENCES:
        grid.add_column(f"÷{arm.key}", justify="right")
    for name in ("CPU µs/req", "CPU %", "RSS MiB", "p50 ms", "p99 ms", "rec/commit", "errors"):
        grid.add_column(name, justify="right")
    for result in results.values():
        latency = result.latency
        grid.add_row(
            result.arm.label,
            result.arm.quota,
            f"{result.rate:,.0f}",
            f"{result.spread * 100:.0f}%",
            *(_ratio(result.rate, references.get(arm.key)) for arm in REFERENCES),
            f"{result.cpu_us_per_request:,.0f}",
            f"{result.cpu_percent:.0f}",
            f"{result.rss_mib:.0f}",
            _optional(latency.p50_ms if latency else None, ".2f"),
            _optional(latency.p99_ms if latency else None, ".2f"),
            "—" if result.arm.reference else _optional(result.records_per_commit, ".1f"),
            f"[red]{result.errors}" if result.errors else "0",
            end_section=result.arm.key == REFERENCES[-1].key,
        )
    return grid


def _failures(result: ArmResult) -> str:
    """``"503 x 2, socket errors x 1"``: what the failed requests were."""
    counted: dict[str, int] = {}
    for sample in result.samples:
        for status, count in sample.failures.items():
            counted[f"HTTP {status}"] = counted.get(f"HTTP {status}", 0) + count
        if sample.socket_errors:
            counted["socket errors"] = counted.get("socket errors", 0) + sample.socket_errors
    return ", ".join(f"{kind} x {count}" for kind, count in sorted(counted.items())) or "?"


def _latency_notes(label: str, latency: LatencyResult) -> list[str]:
    lines = []
    if latency.bad_status:
        lines.append(f"{label}: {latency.bad_status} error answers in the latency run")
    if latency.achieved_rate < LATENCY_SHORTFALL * latency.target_rate:
        lines.append(
            f"{label}: the latency run reached {latency.achieved_rate:,.0f} of"
            f" {latency.target_rate:,.0f} req/s aimed at: the server (or h2load) could not"
            " keep up, so p50/p99 include queueing"
        )
    return lines


def notes(results: dict[str, ArmResult]) -> list[str]:
    """What the table cannot say: latency gaps, Redis's own CPU, failed requests."""
    lines = []
    for result in results.values():
        label = f"{result.arm.label} ({result.arm.quota})"
        if result.latency_note:
            lines.append(f"{label}: latency {result.latency_note}")
        elif result.latency:
            lines += _latency_notes(label, result.latency)
        if result.redis_us_per_request is not None:
            lines.append(
                f"{label}: Redis server CPU {result.redis_us_per_request:.0f} µs/req"
                " (not in the server CPU column)"
            )
        if result.errors:
            lines.append(f"{label}: {result.errors} failed requests ({_failures(result)})")
    unsaturated = [r for r in results.values() if r.cpu_percent < SATURATED_PERCENT]
    if unsaturated:
        names = ", ".join(
            f"{r.arm.key} {r.cpu_percent:.0f} % (waited {r.cpu_wait_percent:.0f} %)"
            for r in unsaturated
        )
        lines.append(
            f'server below {SATURATED_PERCENT:.0f} % of its core: {names}. "waited" is the'
            " time it was ready to run while other processes held its core; the rest of the"
            " gap is the load generator or waits (I/O, the journal's commits). Their req/s"
            " understate the server; CPU µs/req holds better."
        )
    return lines


def print_report(console: Console, results: dict[str, ArmResult], header: list[str]) -> None:
    for line in header:
        console.print(f"[dim]{line}")
    console.print(table(results))
    for line in notes(results):
        console.print(f"  • {line}")


def write_json(directory: Path, *, results: dict[str, ArmResult], context: dict[str, Any]) -> Path:
    """``bench-<UTC timestamp>.json`` under ``directory``, written whole or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    references = reference_rates(results)
    document = context | {
        "arms": [
            {
                "key": result.arm.key,
                "label": result.arm.label,
                "endpoint": result.arm.endpoint,
                "quota": result.arm.quota,
                "reference": result.arm.reference,
                "summary": result.summary(references),
                "samples": [asdict(sample) for sample in result.samples],
                "latency": asdict(result.latency) if result.latency else None,
                "latency_note": result.latency_note or None,
            }
            for result in results.values()
        ]
    }
    path = directory / f"bench-{stamp}.json"
    partial = path.with_suffix(".tmp")
    partial.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    os.replace(partial, path)
    return path
