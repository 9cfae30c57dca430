"""``ensu serve``: uvicorn configured for mutual TLS, or plain HTTP behind a proxy (R-GW-1)."""

from __future__ import annotations

import os
import pickle
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from ensu import logs
from ensu.bounds import HeadLimits
from ensu.cli import app as cli
from ensu.cli import serve
from ensu.config import Settings, TLSMode, get_settings
from ensu.edge import uvicorn_tls
from ensu.pki import service as pki


async def nothing(scope: Any, receive: Any, send: Any) -> None:
    """A stand-in ASGI app: these tests look at the server's configuration only."""


@pytest.fixture
def settings(var_dir: Path) -> Settings:
    settings = Settings(var_dir=var_dir)
    pki.init(directory=settings.pki_dir_path)
    return settings


def loaded(options: dict[str, Any]) -> uvicorn.Config:
    config = uvicorn.Config(nothing, **options)
    config.load()
    return config


def test_direct_mode_requires_a_client_certificate_over_tls12(settings: Settings) -> None:
    options = serve.server_options(settings=settings)
    assert (options["host"], options["port"]) == ("127.0.0.1", 8443)
    assert options["proxy_headers"] is False
    config = loaded(options)
    protocol: object = config.http_protocol_class  # uvicorn's annotation says a class
    assert protocol == uvicorn_tls.BoundedProtocol(settings.head_limits)
    assert config.ssl is not None
    assert config.ssl.verify_mode is ssl.CERT_REQUIRED
    assert config.ssl.minimum_version is ssl.TLSVersion.TLSv1_2
    ca = ssl.PEM_cert_to_DER_cert((settings.pki_dir_path / "ca.pem").read_text())
    assert config.ssl.get_ca_certs(binary_form=True) == [ca]


@pytest.mark.parametrize("mode", [TLSMode.DIRECT, TLSMode.PROXY])
def test_both_modes_bound_the_request_head_with_the_settings(
    settings: Settings, mode: TLSMode
) -> None:
    """R-GW-6: the head bounds of ``ENSU_MAX_*`` reach the protocol, which pickles to the
    ``--workers`` processes."""
    tuned = settings.model_copy(
        update={"tls_mode": mode, "max_url_bytes": 1024, "max_header_count": 20}
    )
    protocol = serve.server_options(settings=tuned, workers=2)["http"]
    assert protocol == uvicorn_tls.BoundedProtocol(HeadLimits(url_bytes=1024, header_count=20))
    assert pickle.loads(pickle.dumps(protocol)) == protocol  # noqa: S301 - our own bytes


def test_options_override_the_settings(settings: Settings) -> None:
    options = serve.server_options(settings=settings, host="::1", port=9443, workers=3)
    assert (options["host"], options["port"], options["workers"]) == ("::1", 9443, 3)


def test_missing_pki_points_to_init(var_dir: Path) -> None:
    with pytest.raises(serve.ServeError, match="run `ensu pki init`"):
        serve.server_options(settings=Settings(var_dir=var_dir))


def test_proxy_mode_serves_plain_http_on_the_loopback(var_dir: Path) -> None:
    """No PKI needed: the proxy terminates mutual TLS."""
    options = serve.server_options(settings=Settings(var_dir=var_dir, tls_mode=TLSMode.PROXY))
    assert (options["host"], options["port"]) == ("127.0.0.1", serve.PROXY_UPSTREAM_PORT)
    assert "ssl_certfile" not in options
    assert loaded(options).ssl is None


def test_proxy_mode_refuses_a_public_address_unless_proxies_are_trusted(var_dir: Path) -> None:
    plain = Settings(var_dir=var_dir, tls_mode=TLSMode.PROXY)
    with pytest.raises(serve.ServeError, match=r"refusing plain HTTP on 0\.0\.0\.0"):
        serve.server_options(settings=plain, host="0.0.0.0")  # noqa: S104 - the refused case
    trusting = Settings(var_dir=var_dir, tls_mode=TLSMode.PROXY, trusted_proxies="10.0.0.0/24")
    assert serve.server_options(settings=trusting, host="10.0.0.5")["host"] == "10.0.0.5"
    assert serve.server_options(settings=plain, host="localhost")["host"] == "localhost"


@pytest.fixture
def environment(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENSU_VAR_DIR", str(var_dir))
    get_settings.cache_clear()
    yield var_dir
    get_settings.cache_clear()


def test_cli_without_pki_says_what_to_do(environment: Path) -> None:
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1
    assert "run `ensu pki init`" in result.output


def test_cli_runs_the_app_factory_with_the_shared_options(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki.init(directory=environment / "pki")
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    # ensu.logs: the set-up of a real server's process, recorded (here it would take
    # over this test process's logging and stream).
    formats: list[str] = []
    monkeypatch.setattr(logs, "configure", lambda *, log_format: formats.append(log_format))
    monkeypatch.setenv("ENSU_PROBE_URL", "")  # restored (unset) after the test
    monkeypatch.delenv("ENSU_PROBE_URL")
    result = CliRunner().invoke(cli, ["serve", "--port", "9443", "--workers", "2"])
    assert result.exit_code == 0, result.output
    expected = serve.server_options(settings=get_settings(), port=9443, workers=2)
    assert calls == [("ensu.app:create_served_app", {"factory": True, **expected})]
    assert formats == ["console"]  # the sandbox's readable lines
    assert (expected["log_config"], expected["access_log"]) == (None, False)
    # The workers' availability probe calls the port actually served.
    assert os.environ["ENSU_PROBE_URL"] == "https://127.0.0.1:9443"
    curl = f"--cert {environment / 'pki' / 'consumer-a.pem'}"
    assert curl in result.output
    assert "https://127.0.0.1:9443/ensudocuments/v1/etatSante" in result.output
