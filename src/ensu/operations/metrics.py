"""Prometheus metrics for the operator's usual tools (prometheus-client).

Two kinds of series:

- **counted on the hot path**, by :func:`observe_call`, which the gateway calls from the
  one place where it builds a call's journal record (``ensu.gateway.layer._record``), so
  that every call, allowed or refused, is counted once: requests by route template,
  status and code, their latency (from the chain's start to the answer being ready,
  the journal's commit excluded: that is ``ensu_journal_wait_seconds``), quota refusals.
  The cost is a dictionary lookup for the cached label child and prometheus-client's
  own per-metric lock; nothing else.
- **read at scrape time** from the app's state by :class:`StateCollector`: the journal
  writer's commits and records (the mean commit size is their ratio), its largest
  commit, its queue, whether it is writable, the integrity stop, the age of the
  in-memory caches (revocations, maintenance windows), whether a maintenance window is
  on, and the availability probe's last outcome.

The series are served on a listener of their own (:mod:`ensu.operations.listener`,
``ENSU_METRICS_PORT``), never on the consumers' mutual-TLS listener.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

#: The process's hot-path series (one registry for every app object of the process).
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "ensu_requests",
    "API calls answered, by route template, HTTP status and contract code.",
    ["route", "status", "code"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "ensu_request_duration_seconds",
    "From the start of the access chain to the answer being ready (journal excluded).",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
QUOTA_REFUSALS = Counter(
    "ensu_quota_refusals",
    "Calls refused 429 900804 (quota exceeded, R-Q-1).",
    registry=REGISTRY,
)
JOURNAL_WAIT = Histogram(
    "ensu_journal_wait_seconds",
    "How long a call waited for its journal record to be durable (the commit lag).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)

API_PREFIX = "/ensudocuments/v1"
_FIXED = frozenset(
    f"{API_PREFIX}/{name}"
    for name in ("etatSante", "codesDocuments", "documents", "mentionInformation")
)
_ONE = f"{API_PREFIX}/documents/{{typeIdentifiant}}/{{identifiant}}"


def route_label(path: str) -> str:
    """The route template of ``path``: identifiers never become label values (each one
    would be a new series)."""
    if path in _FIXED:
        return path
    if path.startswith(f"{API_PREFIX}/documents/"):
        parts = path[len(API_PREFIX) + 1 :].split("/")
        if len(parts) == 3:
            return _ONE
        if len(parts) == 4 and parts[3] == "contenu":
            return f"{_ONE}/contenu"
    return "other"


_children: dict[tuple[str, int, str], tuple[Any, Any]] = {}


def observe_call(path: str, status: int, code: str | None, started: float) -> None:
    """Count one answered call (see the module docstring); ``started`` is ``time.time()``
    at the chain's start."""
    key = (path, status, code or "")
    children = _children.get(key)
    if children is None:
        route = route_label(path)
        children = (REQUESTS.labels(route, str(status), code or "none"), LATENCY.labels(route))
        if len(_children) < 10_000:  # odd paths all map to "other": bounded anyway
            _children[key] = children
    children[0].inc()
    children[1].observe(max(0.0, time.time() - started))
    if code == "900804":
        QUOTA_REFUSALS.inc()


class StateCollector(Collector):
    """Series read from the app's state at scrape time (see the module docstring)."""

    def __init__(self, state: Any, clock: Any = time.time) -> None:
        self.state = state
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        state, now = self.state, self.clock()
        journal = getattr(state, "journal", None)
        if journal is not None:
            yield from _journal_series(journal)
        yield from _cache_ages(state, now)
        watch = getattr(state, "maintenance", None)
        if watch is not None:
            on = watch.current(now) is not None
            yield _gauge("ensu_maintenance_active", "1 during a planned window.", on)
        probe = getattr(state, "probe", None)
        if probe is not None:
            yield _gauge("ensu_probe_up", "1 when the last availability probe passed.", probe.up)
            yield _gauge(
                "ensu_probe_last_success_timestamp_seconds",
                "When the availability probe last passed (Unix time).",
                probe.last_success or 0.0,
            )
        outcomes = getattr(state, "outcomes", None)
        if outcomes is not None:
            family = CounterMetricFamily(
                "ensu_availability_observations",
                "Observations behind the availability minutes (R-SQ-2).",
                labels=["source", "outcome"],
            )
            for (source, outcome), count in sorted(outcomes.totals.items()):
                family.add_metric([source, outcome], count)
            yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _journal_series(journal: Any) -> Iterator[Any]:
    stats = journal.writer.stats
    for name, documentation, value in (
        ("ensu_journal_commits", "Journal transactions committed.", stats.commits),
        ("ensu_journal_records", "Journal records committed.", stats.records),
        ("ensu_journal_checkpoints", "Signed checkpoints written.", stats.checkpoints),
        ("ensu_journal_failures", "Journal commits that failed.", stats.failures),
    ):
        yield CounterMetricFamily(name, documentation, value=value)
    yield _gauge(
        "ensu_journal_largest_commit_records",
        "The most records one journal commit held (group commit).",
        stats.largest_batch,
    )
    yield _gauge(
        "ensu_journal_queue_depth",
        "Records and checkpoints waiting for the journal writer.",
        journal.writer.queue_depth,
    )
    yield _gauge(
        "ensu_journal_writable",
        "1 when the journal store accepts records.",
        journal.writer.available,
    )
    yield _gauge(
        "ensu_integrity_stop",
        "1 while an integrity breach stops the service (R-TR-2).",
        journal.stopped,
    )


def _cache_ages(state: Any, now: float) -> Iterator[Any]:
    family = GaugeMetricFamily(
        "ensu_cache_age_seconds",
        "Seconds since an in-memory cache of the hot path was last refreshed.",
        labels=["cache"],
    )
    authority = getattr(state, "authority", None)
    sources = (
        ("revocations", getattr(getattr(authority, "revocations", None), "fresh_at", None)),
        ("maintenance_windows", getattr(getattr(state, "maintenance", None), "fresh_at", None)),
    )
    for name, fresh_at in sources:
        if fresh_at is not None:
            family.add_metric([name], now - fresh_at if math.isfinite(fresh_at) else -1.0)
    yield family
