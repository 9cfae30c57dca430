"""The ``ensu-client`` command: where its connection comes from, what it prints, and how
it reports a refusal (R-CON-1). The API is the mock transport's fake."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ensu_client import Client, ConfigurationError
from ensu_client import _cli as cli
from ensu_client._config import ClientConfig, read_file
from tests.sdk.fake import API, CLIENT_ID, PDF, SIREN, TELESERVICE, FakeApi, document_json, problem

CONNECTION = ["--url", "https://api.test", "--client-id", CLIENT_ID, "--teleservice", TELESERVICE]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """The fake behind every client the command makes (the settings are still merged)."""
    fake = FakeApi()

    def client(config: ClientConfig) -> Client:
        return Client(config=config, transport=fake.transport())

    monkeypatch.setattr(cli, "make_client", client)
    for name in ("URL", "CLIENT_ID", "TELESERVICE", "CONFIG", "SILO", "SILO_KEY_FILE"):
        monkeypatch.delenv(f"ENSU_CLIENT_{name}", raising=False)
    return fake


def run(*argv: str) -> int:
    try:
        cli.main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_documents_json_is_the_page_as_the_api_gives_it(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*CONNECTION, "documents", "--siren", SIREN, "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    documents = [document_json(index) for index in range(3)]
    assert printed == {"documents": documents, "page": 1, "taille": 20, "total": 3}


def test_documents_table_shows_references_to_fetch(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*CONNECTION, "documents", "--siren", SIREN) == 0
    out = capsys.readouterr().out
    assert "IDENSUA:" in out
    assert "3 of 3 document(s)" in out


def test_fetch_writes_the_checked_pdf(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "doc.pdf"
    assert run(*CONNECTION, "fetch", "IDENSUA:" + "0" * 64, "-o", str(target)) == 0
    assert target.read_bytes() == PDF
    assert "checked" in capsys.readouterr().out


def test_a_refusal_says_its_code_correlation_id_and_what_to_do(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.queue(
        f"{API}/mentionInformation",
        lambda request: problem("910003", 403, correlation_id=request.headers["x-correlation-id"]),
    )
    assert run(*CONNECTION, "mention") == 1
    err = capsys.readouterr().err
    sent = api.calls(f"{API}/mentionInformation")[0].headers["x-correlation-id"]
    assert "code 910003 (HTTP 403)" in err
    assert f"correlation id {sent}" in err
    assert "what to do:" in err
    assert "--teleservice" in err


def test_a_bad_reference_is_a_usage_error(api: FakeApi) -> None:
    assert run(*CONNECTION, "fetch", "not-a-reference") == 2


def test_quota_prints_the_ratelimit_state(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*CONNECTION, "quota", "--json") == 0
    assert json.loads(capsys.readouterr().out)["limit"] == 50


def test_missing_settings_name_the_options_and_variables(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--url", "https://api.test", "mention") == 1
    err = capsys.readouterr().err
    assert "--client-id" in err
    assert "ENSU_CLIENT_TELESERVICE" in err


def test_options_beat_variables_which_beat_the_file(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ensu.toml"
    config.write_text(
        '[connection]\nurl = "https://file.test"\nclient_id = "from-file"\n'
        'teleservice = "TS-FILE"\ncert = "certs/me.pem"\n'
    )
    monkeypatch.setenv("ENSU_CLIENT_TELESERVICE", TELESERVICE)
    assert run("--config", str(config), "--url", "https://api.test", "mention") == 0
    (call,) = api.calls(f"{API}/mentionInformation")
    assert call.url.host == "api.test"
    assert call.headers["id_teleservice"] == TELESERVICE
    form = dict(httpx.QueryParams(api.calls("/token")[0].content.decode()))
    assert form["client_id"] == "from-file"


def test_paths_in_the_config_file_are_relative_to_it(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "ensu.toml"
    config.parent.mkdir()
    config.write_text('cert = "me.pem"\nkey = "/abs/me.key"\n')
    values = read_file(config)
    assert values["cert"] == config.parent.resolve() / "me.pem"
    assert values["key"] == Path("/abs/me.key")


def test_an_unknown_setting_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ensu.toml"
    config.write_text('[connection]\nulr = "https://typo.test"\n')
    with pytest.raises(ValueError, match="ulr"):
        read_file(config)


def test_certificate_files_are_required_and_named_when_absent(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="client certificate is required"):
        Client("https://api.test", client_id="c", teleservice="t")
    with pytest.raises(ConfigurationError, match=r"--cert .*absent\.pem: no such file"):
        Client("https://api.test", client_id="c", teleservice="t", cert=tmp_path / "absent.pem")
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="cannot load the TLS files"):
        Client("https://api.test", client_id="c", teleservice="t", cert=tmp_path / "bad.pem")
