"""``ensu serve`` runs the portal beside the API: both answer, and one Ctrl-C (SIGINT to
the process group, as a terminal sends it) stops both, each through its own shutdown."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ensu import db
from ensu.config import Settings
from ensu.pki import service as pki
from tests.functional.conftest import free_port, spawn_serve


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait(process: subprocess.Popen[bytes], check: httpx.Client, url: str) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if check.get(url).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.2)
    return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_signal_stops_the_api_and_the_portal(tmp_path: Path, stop: signal.Signals) -> None:
    var = tmp_path / "var"
    settings = Settings(var_dir=var)
    db.upgrade(settings.database_url)
    pki.init(directory=settings.pki_dir_path)
    api_port, portal_port = free_port(), free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENSU_")}
    env |= {
        "ENSU_VAR_DIR": str(var),
        "ENSU_LISTEN_PORT": str(api_port),
        "ENSU_PORTAL_PORT": str(portal_port),
    }
    log = tmp_path / "serve.log"
    process = spawn_serve([], env=env, cwd=tmp_path, log=log)
    context = ssl.create_default_context(cafile=str(settings.pki_dir_path / "ca.pem"))
    context.load_cert_chain(
        settings.pki_dir_path / "consumer-a.pem", settings.pki_dir_path / "consumer-a.key"
    )
    try:
        with httpx.Client(verify=context, timeout=5) as api, httpx.Client(timeout=5) as plain:
            assert _wait(
                process, api, f"https://127.0.0.1:{api_port}/ensudocuments/v1/etatSante"
            ), log.read_text()
            assert _wait(process, plain, f"http://127.0.0.1:{portal_port}/connexion"), (
                log.read_text()
            )
        os.killpg(process.pid, stop)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert _refused(api_port)
    assert _refused(portal_port)
    output = log.read_text()
    assert "Portal (people's pages, no client certificate)" in output
    assert "Traceback" not in output  # both shut down cleanly, none cancelled midway
    assert output.count("Application shutdown complete") == 2
