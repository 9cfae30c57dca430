"""Prometheus metrics for the operator's usual tools (prometheus-client).

Two kinds of series:

- **counted on the hot path**, by :func:`observe_call`, which the gateway calls from the
  one place where it builds a call's journal record (``ensu.gateway.layer._record``), so
  that every call, allowed or refused, is counted once: requests by route template,
  status and code, their latency (from the chain's start to the answer being ready,
  the journal's commit excluded: that is ``ensu_journal_wait_seconds``), quota refusals.
  The cost is a few dictionary updates (:class:`HotPath`); no lock, no I/O.
- **read at scrape time** from the app's state by :class:`StateCollector`: the journal
  writer's commits and records (the mean commit size is their ratio), its largest
  commit, its queue, whether it is writable, the integrity stop, the age of the
  in-memory caches (revocations, maintenance windows, the service cut), whether a
  maintenance window is on, whether an incident cuts the service, the security events
  raised by rule, and the availability probe's last outcome.

The series are served on a listener of their own (:mod:`ensu.operations.listener`,
``ENSU_METRICS_PORT``), never on the consumers' mutual-TLS listener.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

#: Latency buckets (seconds): the hot path answers in well under a millisecond when
#: idle, and the store bound (ENSU_STORE_TIMEOUT_SECONDS) is 2 s by default.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """A histogram as plain counts, rendered at scrape time (see :class:`HotPath`)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one: above every bucket
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def time(self) -> _Timer:
        return _Timer(self)

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, rendered = 0, []
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            cumulative += count
            rendered.append((bound, float(cumulative)))
        return rendered


class _Timer:
    __slots__ = ("histogram", "started")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.histogram.observe(time.perf_counter() - self.started)


class HotPath(Collector):
    """The series the hot path counts, as plain integers in this process's event loop
    thread (the only one the gateway runs on): no lock, no object per call; rendered in
    the Prometheus families at scrape time. Measured on the shared 2-core machine under
    load: prometheus-client's own Counter and Histogram cost 0.9 and 1.7 µs a call
    (their locks), these a few tenths of a microsecond."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.quota_refusals = 0
        self.journal_wait = Histogram()

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "ensu_requests",
            "API calls answered, by route template, HTTP status and contract code.",
            labels=["route", "status", "code"],
        )
        for labels, count in sorted(self.requests.items()):
            requests.add_metric(list(labels), count)
        yield requests
        latency = HistogramMetricFamily(
            "ensu_request_duration_seconds",
            "From the start of the access chain to the answer being ready (journal excluded).",
            labels=["route"],
        )
        for route, histogram in sorted(self.latency.items()):
            latency.add_metric([route], histogram.buckets(), histogram.total)
        yield latency
        yield CounterMetricFamily(
            "ensu_quota_refusals",
            "Calls refused 429 900804 (quota exceeded, R-Q-1).",
            value=self.quota_refusals,
        )
        wait = HistogramMetricFamily(
            "ensu_journal_wait_seconds",
            "How long a call waited for its journal record to be durable (the commit lag).",
        )
        wait.add_metric([], self.journal_wait.buckets(), self.journal_wait.total)
        yield wait


#: The process's hot-path series (one registry for every app object of the process).
REGISTRY = CollectorRegistry(auto_describe=False)
HOT = HotPath()
REGISTRY.register(HOT)
#: ``with metrics.JOURNAL_WAIT.time(): await journal.append(...)`` in the gateway.
JOURNAL_WAIT = HOT.journal_wait

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


_labels: dict[tuple[str, int, str | None], tuple[str, str, str]] = {}


def observe_call(path: str, status: int, code: str | None, started: float) -> None:
    """Count one answered call (see the module docstring); ``started`` is ``time.time()``
    at the chain's start."""
    key = (path, status, code)
    labels = _labels.get(key)
    if labels is None:
        labels = (route_label(path), str(status), code or "none")
        if len(_labels) < 10_000:  # odd paths all map to "other": bounded anyway
            _labels[key] = labels
    requests = HOT.requests
    requests[labels] = requests.get(labels, 0) + 1  # nosec B113  # a dict, not HTTP
    histogram = HOT.latency.get(labels[0])
    if histogram is None:
        histogram = HOT.latency[labels[0]] = Histogram()
    histogram.observe(max(0.0, time.time() - started))
    if code == "900804":
        HOT.quota_refusals += 1


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
        cuts = getattr(state, "cuts", None)
        if cuts is not None:
            cut = cuts.current() is not None
            yield _gauge("ensu_service_cut", "1 while an incident cuts the service (R-OPS-2).", cut)
        detector = getattr(state, "detector", None)
        if detector is not None:
            family = CounterMetricFamily(
                "ensu_security_events",
                "Security events raised by this process's detection, by rule (R-OPS-1).",
                labels=["rule"],
            )
            for rule, count in sorted(detector.raised_by_rule.items()):
                family.add_metric([rule], count)
            yield family
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
        ("service_cut", getattr(getattr(state, "cuts", None), "fresh_at", None)),
    )
    for name, fresh_at in sources:
        if fresh_at is not None:
            family.add_metric([name], now - fresh_at if math.isfinite(fresh_at) else -1.0)
    yield family
