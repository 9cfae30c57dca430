"""The hot path's series and the state read at scrape time (metrics for operators)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ensu.operations import metrics
from ensu.operations.availability import Outcomes
from ensu.operations.maintenance import Planned

API = "/ensudocuments/v1"


def test_identifiers_never_become_label_values() -> None:
    assert metrics.route_label(f"{API}/documents") == f"{API}/documents"
    one = f"{API}/documents/{{typeIdentifiant}}/{{identifiant}}"
    assert metrics.route_label(f"{API}/documents/IDENSUA/abc") == one
    assert metrics.route_label(f"{API}/documents/IDENSUA/abc/contenu") == f"{one}/contenu"
    assert metrics.route_label(f"{API}/documents/IDENSUA/abc/other") == "other"
    assert metrics.route_label(f"{API}/nothing/../etc") == "other"


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_observe_call_counts_requests_latency_and_quota_refusals() -> None:
    route = f"{API}/codesDocuments"
    before = sample("ensu_requests_total", route=route, status="429", code="900804")
    refusals = sample("ensu_quota_refusals_total")
    latencies = sample("ensu_request_duration_seconds_count", route=route)
    metrics.observe_call(route, 429, "900804", time.time())
    metrics.observe_call(route, 429, "900804", time.time())
    assert sample("ensu_requests_total", route=route, status="429", code="900804") == before + 2
    assert sample("ensu_quota_refusals_total") == refusals + 2
    assert sample("ensu_request_duration_seconds_count", route=route) == latencies + 2


def test_the_state_collector_reads_the_app_state_at_scrape_time() -> None:
    now = 1_000_000.0
    stats = SimpleNamespace(commits=3, records=7, checkpoints=1, failures=0, largest_batch=4)
    writer = SimpleNamespace(stats=stats, queue_depth=2, available=True)
    outcomes = Outcomes(None)
    outcomes.observe_call(now, 200, None)
    outcomes.observe_call(now, 503, "930004")
    state = SimpleNamespace(
        journal=SimpleNamespace(writer=writer, stopped=True),
        authority=SimpleNamespace(revocations=SimpleNamespace(fresh_at=now - 0.25)),
        maintenance=SimpleNamespace(
            fresh_at=now - 0.5,
            current=lambda at: Planned(1, now - 1, now + 1) if at == now else None,
        ),
        probe=SimpleNamespace(up=True, last_success=now - 3),
        outcomes=outcomes,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.StateCollector(state, clock=lambda: now))
    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }

    def one(name: str) -> float:
        return float(families[name].samples[0].value)

    assert one("ensu_journal_records") == 7
    assert one("ensu_journal_largest_commit_records") == 4
    assert one("ensu_journal_queue_depth") == 2
    assert one("ensu_integrity_stop") == 1
    assert one("ensu_maintenance_active") == 1
    assert one("ensu_probe_up") == 1
    ages = {s.labels["cache"]: s.value for s in families["ensu_cache_age_seconds"].samples}
    assert ages == {"revocations": 0.25, "maintenance_windows": 0.5}
    observed = {
        (s.labels["source"], s.labels["outcome"]): s.value
        for s in families["ensu_availability_observations"].samples
    }
    assert observed == {("call", "answered"): 1, ("call", "failed"): 1}


def test_the_service_cut_and_the_security_events_are_series() -> None:
    """R-OPS-1, R-OPS-2: whether an incident cuts the service, and the events raised."""
    now = 1_000_000.0
    state = SimpleNamespace(
        cuts=SimpleNamespace(current=lambda: 3, fresh_at=now - 0.2),
        detector=SimpleNamespace(raised_by_rule={"enumeration": 2, "mismatch": 1}),
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.StateCollector(state, clock=lambda: now))
    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert families["ensu_service_cut"].samples[0].value == 1
    events = {s.labels["rule"]: s.value for s in families["ensu_security_events"].samples}
    assert events == {"enumeration": 2, "mismatch": 1}
    ages = {s.labels["cache"]: s.value for s in families["ensu_cache_age_seconds"].samples}
    assert ages["service_cut"] == pytest.approx(0.2)
