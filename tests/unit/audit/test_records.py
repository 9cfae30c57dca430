"""Journal records: the closed schema of R-TR-1, canonical bytes, no token, no secret."""

from __future__ import annotations

import dataclasses
import datetime as dt

import orjson
import pytest

from ensu.audit.records import (
    CallRecord,
    Decision,
    EventRecord,
    RecordError,
    Retention,
    decode,
    encode,
)
from tests.unit.audit.conftest import call

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_a_call_record_has_every_field_of_r_tr_1_in_canonical_bytes() -> None:
    """R-TR-1: time (UTC, ms), consumer, téléservice, certificate, token id, IP,
    correlation id, subject, documents, decision, reason, status; sorted keys, no spaces."""
    record = call(
        7, at=dt.datetime(2026, 3, 2, 10, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    )
    expected = (
        '{"at":"2026-03-02T09:30:05.123Z","client_id":"client-a","consumer":"13000000000005",'
        '"correlation_id":"c0ffee00-0000-4000-8000-000000000007","decision":"allowed",'
        '"document_codes":["AMR"],"document_ids":["DOC7"],"error_code":null,'
        '"id_teleservice":"TS-A","idsp":null,"ip":"192.0.2.10","jti":"jti-7","kind":"call",'
        '"method":"GET","reason":"ok","route":"/ensudocuments/v1/documents/{idensua}",'
        '"siren":"732829320","status":200,"thumbprint":"' + "A" * 43 + '","v":1}'
    )
    assert encode(record).decode() == expected
    assert decode(encode(record)) == record
    assert record.retention is Retention.EXCHANGE


def test_an_event_record_is_canonical_whatever_the_order_of_its_details() -> None:
    first = EventRecord(
        at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        tag="consumers:teleservice:suspended",
        actor="cli:alice",
        details={"to": "suspended", "id_teleservice": "TS-A", "nested": {"b": 1, "a": [2]}},
        event_id=12,
    )
    second = dataclasses.replace(first, details=dict(reversed(list(first.details.items()))))
    assert encode(first) == encode(second)
    assert b'"nested":{"a":[2],"b":1}' in encode(first)
    assert decode(encode(first)) == first
    assert first.id_teleservice == "TS-A"
    assert first.retention is Retention.DATAPASS
    token = dataclasses.replace(first, tag="oauth:token:issued")
    assert token.retention is Retention.EXCHANGE


@pytest.mark.parametrize(
    "change",
    [
        {"jti": JWT},
        {"route": "/ensudocuments/v1/documents?access_token=" + JWT},
        {"client_id": "a b"},
        {"consumer": "123"},
        {"thumbprint": "short"},
        {"ip": "not-an-ip"},
        {"siren": "12345678X"},
        {"status": 200, "decision": Decision.REFUSED},
        {"status": 99},
        {"error_code": "ERR"},
        {"reason": ""},
        {"document_ids": ("x" * 129,)},
        {"at": dt.datetime(2026, 1, 1)},  # noqa: DTZ001 - naive on purpose: refused
    ],
)
def test_call_records_refuse_bad_values_and_tokens(change: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        dataclasses.replace(call(1), **change)  # type: ignore[arg-type]


def test_the_schema_is_closed() -> None:
    with pytest.raises(TypeError):
        CallRecord(  # type: ignore[call-arg]
            at=dt.datetime.now(dt.UTC),
            route="/x",
            decision=Decision.ALLOWED,
            reason="ok",
            status=200,
            authorization="Bearer x",
        )


@pytest.mark.parametrize(
    "details",
    [
        {"client_secret": "s3cr3t"},
        {"nested": {"Password": "x"}},
        {"list": [{"refresh_token": "x"}]},
        {"api_token": "x"},
        {"header": "Bearer " + JWT},
        {"bad": object()},
    ],
)
def test_event_details_never_hold_secrets(details: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        EventRecord(at=dt.datetime.now(dt.UTC), tag="a:b:c", actor="x", details=details)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"v":2,"kind":"call"}',
        b'{"v":1,"kind":"other","at":"2026-03-02T09:30:05.123Z"}',
        b'{"v":1,"kind":"event","at":"2026-03-02T09:30:05.123Z"}',
    ],
)
def test_decode_refuses_what_is_not_a_record(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode(data)


def test_decode_refuses_non_canonical_bytes() -> None:
    document = orjson.loads(encode(call(1)))
    with pytest.raises(RecordError, match="canonical"):
        decode(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def test_a_refused_request_is_recorded_even_with_malformed_headers() -> None:
    """R-TR-1: every refusal is journaled; what the caller sent malformed is left empty."""
    fields = {
        name: getattr(call(3, refused=True), name)
        for name in CallRecord.__dataclass_fields__
        if name != "kind"
    }
    record = CallRecord.from_request(
        **{**fields, "id_teleservice": "bad value!", "siren": "12", "document_codes": ("?",)}
    )
    assert (record.id_teleservice, record.siren, record.document_codes) == (None, None, ())
    assert record.reason == "OutsidePerimeter"
    with pytest.raises(RecordError):
        CallRecord.from_request(**{**fields, "reason": "not a code"})
    with pytest.raises(RecordError):
        CallRecord.from_request(**{**fields, "jti": JWT, "status": 99})


def test_the_case_reference_is_kept_and_absent_from_older_records() -> None:
    """``referenceDemande`` (CONTRACT.md) is a field of the call's record; a record
    without it has the very bytes it had before the field existed (its leaf hash too)."""
    with_reference = dataclasses.replace(call(1), reference_demande="DOSSIER-2024-0042")
    assert decode(encode(with_reference)) == with_reference
    assert orjson.loads(encode(with_reference))["reference_demande"] == "DOSSIER-2024-0042"
    assert b"reference_demande" not in encode(call(1))
    with pytest.raises(RecordError):
        dataclasses.replace(call(1), reference_demande="x" * 65)
    values = {field.name: getattr(call(1), field.name) for field in dataclasses.fields(CallRecord)}
    forged = CallRecord.from_request(**{**values, "reference_demande": "<script>"})
    assert forged.reference_demande is None  # what the caller sent is dropped, not the record
