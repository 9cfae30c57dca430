"""The server's log, as operations read it (``ensu.logs``).

``ensu serve`` runs as users run it (the console script, mutual TLS), with JSON lines
(``ENSU_LOG_FORMAT=json``, production's default) and with readable lines (the sandbox's
default). Calls are made with a certificate and tokens: a list, a download, a refusal, a
token request with a client secret in the body (refused, RFC 6749 §2.3). Then:

- every line of the log is a JSON object (json) and every request made has exactly one
  request line, with its correlation id, téléservice, status, code and duration;
- no token, no client secret, no settings secret, no certificate or private key body
  appears anywhere in the log, whatever the format;
- uvicorn's own access lines are gone (the request line replaces them).
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import (
    SIREN,
    A,
    Var,
    api_headers,
    free_port,
    kill_group,
    prepare,
    request_token,
    spawn_serve,
    wait_healthy,
)

PREFIX = "/ensudocuments/v1"
START_TIMEOUT = 30.0
SECRET = "settings-secret-" + uuid.uuid4().hex
CLIENT_SECRET = "client-secret-" + uuid.uuid4().hex
UVICORN_ACCESS = '" 200'  # uvicorn's access line ends: "GET /path HTTP/1.1" 200


@pytest.fixture(scope="module")
def var(tmp_path_factory: pytest.TempPathFactory) -> Var:
    return prepare(tmp_path_factory.mktemp("logs") / "var")


@contextmanager
def serve(var: Var, root: Path, log_format: str) -> Iterator[tuple[httpx.Client, Path]]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENSU_")}
    log = root / f"serve-{log_format}.log"
    for _ in range(3):  # a port found free may be taken before the server binds it
        port = free_port()
        settings = {
            "ENSU_VAR_DIR": str(var.directory),
            "ENSU_LISTEN_PORT": str(port),
            "ENSU_LOG_FORMAT": log_format,
            "ENSU_SECRET_KEY": SECRET,
        }
        process = spawn_serve([], env=env | settings, cwd=root, log=log)
        client = httpx.Client(
            base_url=f"https://127.0.0.1:{port}", verify=var.context(A), timeout=10.0
        )
        if wait_healthy(process, client, f"{PREFIX}/etatSante", timeout=START_TIMEOUT):
            break
        client.close()
        kill_group(process, timeout=START_TIMEOUT)
    else:
        pytest.fail(f"`ensu serve` did not start:\n{log.read_text()[-3000:]}")
    try:
        yield client, log
    finally:
        client.close()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=START_TIMEOUT)


def make_calls(client: httpx.Client, var: Var) -> tuple[dict[str, tuple[int, str | None]], str]:
    """The calls of the test: correlation id -> (status, code); and the token used."""
    token = request_token(client, A.client_id).json()["access_token"]
    document = var.of(SIREN)[0]
    made: dict[str, tuple[int, str | None]] = {}
    for path, bearer in (
        (f"{PREFIX}/documents?siren={SIREN}", token),
        (f"{PREFIX}/documents/IDENSUA/{document.idensua}/contenu", token),
        (f"{PREFIX}/documents?siren={SIREN}", token + "x"),
    ):
        headers = api_headers(bearer, A)
        response = client.get(path, headers=headers)
        code = response.json()["code"] if response.status_code >= 400 else None
        made[headers["X-Correlation-ID"]] = (response.status_code, code)
    assert [status for status, _ in made.values()] == [200, 200, 401]
    secret_post = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": A.client_id},
        headers={"Authorization": f"Bearer {token}"},
        params={"client_secret": CLIENT_SECRET},
    )
    assert secret_post.status_code in (400, 401)
    return made, token


def forbidden_strings(var: Var, token: str) -> dict[str, str]:
    """What must never be in a log: secrets, the token, certificate and key bodies."""
    pem_body = "".join(var.pem(A).splitlines()[1:-1])
    key_body = "".join(var.pki.client_key(A.stem).read_text().splitlines()[1:-1])
    return {
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "settings secret": SECRET,
        "client secret": CLIENT_SECRET,
        "certificate body": pem_body[64:128],
        "certificate line": var.pem(A).splitlines()[2],
        "key body": key_body[16:64],
    }


def test_json_lines_carry_each_request_and_no_secret(
    var: Var, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("json")
    with serve(var, root, "json") as (client, log):
        made, token = make_calls(client, var)
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    other = [line for line in text.splitlines() if line and not line.startswith("{")]
    # the banner (typer.echo, before logging is set up) is the only text that is not JSON
    assert all(not line.startswith(("INFO", "WARNING", "ERROR")) for line in other), other
    requests = [line for line in lines if line["event"] == "request"]
    for correlation_id, (status, code) in made.items():
        (line,) = [line for line in requests if line["correlation_id"] == correlation_id]
        assert line["teleservice"] == A.id_teleservice
        assert (line["status"], line["code"]) == (status, code)
        assert line["duration_ms"] >= 0
        assert line["level"] == "info"
        assert line["logger"] == "ensu.access"
        assert "?" not in line["path"]
    tokens = [line for line in requests if line["path"] == "/token"]
    assert tokens[0]["status"] == 200
    assert tokens[-1]["code"] in ("invalid_request", "invalid_client")
    for name, value in forbidden_strings(var, token).items():
        assert value not in text, name
    assert UVICORN_ACCESS not in text


def test_readable_lines_carry_each_request_and_no_secret(
    var: Var, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("console")
    with serve(var, root, "console") as (client, log):
        made, token = make_calls(client, var)
    text = log.read_text()
    for correlation_id, (status, code) in made.items():
        (line,) = [line for line in text.splitlines() if correlation_id in line]
        assert " request " in line
        assert f"status={status}" in line
        assert f"teleservice={A.id_teleservice}" in line
        assert f"code={code}" in line
        assert "duration_ms=" in line
    for name, value in forbidden_strings(var, token).items():
        assert value not in text, name
    assert UVICORN_ACCESS not in text
