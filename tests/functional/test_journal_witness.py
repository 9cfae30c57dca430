"""An intruder cuts the end of the journal with the server stopped; the operator's checks
and then the consumers' witness see it (R-TR-2).

``ensu serve`` runs as users run it (the console script, mutual TLS, a prepared
``var/``). A consumer makes calls and keeps the journal's signed checkpoint from the
witness route. The server is stopped; the intruder deletes the last leaves, the
checkpoints after them and the tiles beyond them. ``ensu journal verify`` fails against
the checkpoint kept beside the key, and the restarted server refuses data with 503
930002. The intruder, who controls the whole var directory, then deletes the kept
file and the alarm too: the server serves again — and the consumer, with the checkpoint
it kept and the witness route, detects the rollback all the same.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ensu.audit import client_witness, keys
from tests.functional.conftest import (
    ENSU_COMMAND,
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
CALLS = 40


class Server:
    """``ensu serve`` on ``var``, stopped the way an operator stops it (SIGTERM)."""

    def __init__(self, var: Var, root: Path) -> None:
        self.var = var
        self.root = root
        self.log = root / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def env(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith("ENSU_")}
        return env | {"ENSU_VAR_DIR": str(self.var.directory), "ENSU_LISTEN_PORT": str(self.port)}

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.port}", verify=self.var.context(A), timeout=10.0
        )

    def start(self) -> None:
        for _ in range(3):  # a port found free may be taken before the server binds it
            self.port = free_port()
            self.process = spawn_serve([], env=self.env(), cwd=self.root, log=self.log)
            with self.client() as client:
                if wait_healthy(self.process, client, f"{PREFIX}/etatSante", timeout=START_TIMEOUT):
                    return
            self.kill()
        pytest.fail(f"`ensu serve` did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM: the server relays its last events and signs its last checkpoint."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            kill_group(self.process, timeout=START_TIMEOUT)
            self.process = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ENSU_COMMAND), *args],
            env=self.env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@contextlib.contextmanager
def running(var: Var, root: Path) -> Iterator[Server]:
    server = Server(var, root)
    try:
        yield server
    finally:
        server.kill()


def cut_the_end(journal: Path, at: int) -> None:
    """The intruder's cut: leaves from ``at``, the checkpoints after them, the tiles
    beyond them, all deleted together (the server stopped)."""
    with contextlib.closing(sqlite3.connect(journal)) as connection, connection:
        connection.execute("DELETE FROM journal_leaves WHERE leaf_index >= ?", (at,))
        connection.execute("DELETE FROM journal_checkpoints WHERE tree_size > ?", (at,))
        connection.execute("DELETE FROM journal_nodes WHERE ((node_index + 1) << level) > ?", (at,))


def clear_the_alarms(journal: Path) -> None:
    with contextlib.closing(sqlite3.connect(journal)) as connection, connection:
        connection.execute("DELETE FROM journal_alarms")


def documents_called(server: Server, token: str | None) -> str:
    """``CALLS`` honest calls (with a new token if ``token`` is None); the token."""
    with server.client() as client:
        if token is None:
            token = request_token(client, A.client_id).json()["access_token"]
        assert token is not None
        for _ in range(CALLS):
            listed = client.get(
                f"{PREFIX}/documents", params={"siren": SIREN}, headers=api_headers(token, A)
            )
            assert listed.status_code == 200, listed.text
    return token


def test_a_consumer_that_kept_a_checkpoint_detects_a_rollback(tmp_path: Path) -> None:
    var = prepare(tmp_path / "var")
    vkey = keys.load_or_create_signer(var.settings()).verifier.vkey  # published by the operator
    journal = var.directory / "journal.db"
    kept_file = var.directory / "journal" / "checkpoint.note"
    with running(var, tmp_path) as server:
        server.start()
        token = documents_called(server, None)
        server.stop()  # signs a last checkpoint over every call

        server.start()
        documents_called(server, token)
        with server.client() as client:
            answer = client.get(f"{PREFIX}/journal/pointControle", headers=api_headers(token, A))
            assert answer.status_code == 200, answer.text
            assert answer.headers["cache-control"] == "no-store"
            first = client_witness.witness({"pointControle": answer.json()}, vkey, None)
            assert first.size > CALLS  # the calls, and the events of the token
        server.stop()

        server.start()
        with server.client() as client:
            again = client.get(
                f"{PREFIX}/journal/coherence",
                params={"depuis": first.size},
                headers=api_headers(token, A),
            )
            assert again.status_code == 200, again.text
            kept = client_witness.witness(again.json(), vkey, first)
            assert kept.size > first.size + CALLS
        server.stop()

        cut = (first.size + kept.size) // 2  # the first checkpoint stays, signed and good
        cut_the_end(journal, cut)
        verified = server.cli("journal", "verify")
        assert verified.returncode == 1, verified.stdout + verified.stderr
        assert "rollback" in verified.stderr
        assert f"holds {cut} leaves" in verified.stderr

        server.start()
        with server.client() as client:
            refused = client.get(
                f"{PREFIX}/documents", params={"siren": SIREN}, headers=api_headers(token, A)
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "930002"
        server.stop()

        # The intruder controls the var directory: the kept file and the alarm go too.
        kept_file.unlink()
        clear_the_alarms(journal)
        cut_the_end(journal, cut)
        server.start()
        with server.client() as client:
            served = client.get(
                f"{PREFIX}/documents", params={"siren": SIREN}, headers=api_headers(token, A)
            )
            assert served.status_code == 200, served.text  # the server sees nothing now
            latest = client.get(f"{PREFIX}/journal/pointControle", headers=api_headers(token, A))
            assert latest.status_code == 200, latest.text
            with pytest.raises(client_witness.Rollback, match="leaves signed"):
                client_witness.witness({"pointControle": latest.json()}, vkey, kept)
            beyond = client.get(
                f"{PREFIX}/journal/coherence",
                params={"depuis": kept.size},
                headers=api_headers(token, A),
            )
            assert beyond.status_code == 400, beyond.text
            assert beyond.json()["erreurs"][0]["parametre"] == "depuis"
        server.stop()
