"""A consumer installs ensu-client and uses it against the real server (R-CON-1, R-CON-2).

The wheel that ``uv build --package ensu-client`` makes is installed into a fresh virtual
environment (without the server package: the client stands alone; its dependencies at
the versions of ``uv.lock``, from uv's cache when it has them), and its ``ensu-client``
command runs against ``ensu serve``'s app over mutual TLS: the list, a download checked
against ``Repr-Digest``, a document stored in the silo, read back, purged; a refusal
printed with its code, its correlation id and what to do, and found in the journal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.functional.conftest import SIREN, A, Var, app_server, call_records, prepare

ROOT = Path(__file__).resolve().parents[2]
UV = ["bash", str(ROOT / "scripts" / "uv")]
PASSPHRASE = "une phrase de passe assez longue"
#: Bounds a hung step only; each takes a second or two.
STEP_TIMEOUT = 300

pytestmark = pytest.mark.slow


def uv(*args: str, cwd: Path) -> None:
    """``uv ARGS`` offline (from uv's cache), else online: the registries are reachable,
    the cache is only quicker."""
    for mode in (["--offline"], []):
        done = subprocess.run(
            [*UV, *args, *mode],
            check=False,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        if done.returncode == 0:
            return
    pytest.fail(f"uv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@dataclass(frozen=True)
class Installed:
    """A virtual environment holding the built wheel and nothing of the server."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "ensu-client"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("sdk-wheel")
    uv("build", "--package", "ensu-client", "--wheel", "--out-dir", str(work / "dist"), cwd=ROOT)
    (wheel,) = (work / "dist").glob("ensu_client-*.whl")
    lock = work / "lock" / "pylock.toml"  # PEP 751: the locked versions, with their URLs
    lock.parent.mkdir()
    uv(
        "export",
        "--package",
        "ensu-client",
        "--no-emit-workspace",
        "--no-dev",
        "--frozen",
        "--format",
        "pylock.toml",
        "--quiet",
        "--output-file",
        str(lock),
        cwd=ROOT,
    )
    venv = work / "venv"
    uv("venv", str(venv), "--python", sys.executable, "--quiet", cwd=work)
    target = ["--python", str(venv / "bin" / "python")]
    uv("pip", "install", *target, "--quiet", "-r", str(lock), cwd=work)
    uv("pip", "install", *target, "--quiet", str(wheel), cwd=work)
    uv("pip", "check", *target, cwd=work)
    return Installed(venv)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Var, str]]:
    var = prepare(tmp_path_factory.mktemp("sdk-server") / "var")
    with app_server(var.settings()) as port:
        yield var, f"https://127.0.0.1:{port}"


class Consumer:
    """The installed command, run as a consumer's shell would, settings from variables."""

    def __init__(self, installed: Installed, var: Var, url: str, home: Path) -> None:
        self.installed = installed
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": f"{installed.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "COLUMNS": "250",
            "ENSU_CLIENT_URL": url,
            "ENSU_CLIENT_CERT": str(var.pki.client_cert(A.stem)),
            "ENSU_CLIENT_KEY": str(var.pki.client_key(A.stem)),
            "ENSU_CLIENT_CACERT": str(var.pki.ca_cert),
            "ENSU_CLIENT_CLIENT_ID": A.client_id,
            "ENSU_CLIENT_TELESERVICE": A.id_teleservice,
            "ENSU_CLIENT_SILO": str(home / "silo"),
            "ENSU_CLIENT_SILO_PASSPHRASE": PASSPHRASE,
        }
        self.home = home

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.installed.command), *args],
            check=False,
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=STEP_TIMEOUT,
        )
        assert done.returncode == expect, f"{args}: {done.stdout}\n{done.stderr}"
        return done


def _words(text: str) -> Sequence[str]:
    return text.split()


def test_the_installed_client_lists_fetches_and_keeps_documents(
    installed: Installed, server: tuple[Var, str], tmp_path: Path
) -> None:
    var, url = server
    # The wheel stands alone: the server package is not there.
    alone = subprocess.run(
        [str(installed.python), "-c", "import ensu"], check=False, capture_output=True
    )
    assert alone.returncode != 0
    consumer = Consumer(installed, var, url, tmp_path / "home")
    expected = {document.idensua: document for document in var.of(SIREN)}

    assert "ok" in consumer.run("health").stdout
    page = json.loads(consumer.run("documents", "--siren", SIREN, "--json").stdout)
    assert page["total"] == len(expected)
    assert {entry["identifiants"]["IDENSUA"] for entry in page["documents"]} == set(expected)
    assert {"page", "taille", "total", "documents"} == set(page)
    table = consumer.run("documents", "--siren", SIREN).stdout
    assert f"of {len(expected)} document(s)" in table

    # A download, its SHA-256 checked against Repr-Digest and the metadata.
    largest = max(expected.values(), key=lambda document: len(document.content))
    fetched = consumer.run("fetch", f"IDENSUA:{largest.idensua}", "-o", "large.pdf")
    assert "checked" in fetched.stdout
    assert (consumer.home / "large.pdf").read_bytes() == largest.content

    # Into the silo, read back, purged past its retention.
    kept = next(document for document in expected.values() if document is not largest)
    reference = f"IDENSUA:{kept.idensua}"
    consumer.run("silo", "init")
    stored = consumer.run(
        "fetch", reference, "--retention-days", "1", "--reference", "dossier-2026-17"
    )
    assert "stored in the silo" in stored.stdout
    assert [path.name for path in consumer.home.glob("*.pdf")] == ["large.pdf"]  # no clear copy
    for path in (consumer.home / "silo").rglob("*"):
        assert path.is_dir() or kept.content[:200] not in path.read_bytes()
    consumer.run("silo", "read", reference, "-o", "back.pdf")
    assert (consumer.home / "back.pdf").read_bytes() == kept.content
    listed = consumer.run("silo", "list").stdout
    assert "dossier-2026-17" in listed
    assert "0 document(s) purged" in consumer.run("silo", "purge").stdout
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    purged = consumer.run("silo", "purge", "--as-of", later).stdout
    assert "1 document(s) purged" in purged
    gone = consumer.run("silo", "read", reference, "-o", "again.pdf", expect=1)
    assert "Nothing is stored" in gone.stderr
    actions = [_words(line)[2] for line in consumer.run("silo", "trace").stdout.splitlines()]
    assert actions.count("store") == 1
    assert "purge" in actions
    assert "read" in actions

    # A wrong passphrase fails clearly, and reads nothing.
    consumer.env["ENSU_CLIENT_SILO_PASSPHRASE"] = "pas la bonne"
    wrong = consumer.run("silo", "list", expect=1)
    assert "wrong passphrase" in wrong.stderr

    # Quota and mention d'information.
    assert "calls left" in consumer.run("quota").stdout
    assert consumer.run("mention").stdout.strip()

    # A server the client cannot trust (not signed by --cacert): no call at all.
    untrusted = consumer.run("--cacert", str(var.pki.client_cert(A.stem)), "health", expect=1)
    assert "what to do: Check --url" in untrusted.stderr

    # A refusal: another téléservice's ID_Teleservice with this certificate.
    refused = consumer.run("--teleservice", "TS-B", "documents", "--siren", SIREN, expect=1)
    assert "code 910003 (HTTP 403)" in refused.stderr
    assert "what to do:" in refused.stderr
    correlation_id = refused.stderr.split("correlation id ")[1].split()[0]
    journaled = asyncio.run(call_records(var))
    refusals = [record for record in journaled if record.correlation_id == correlation_id]
    assert [record.error_code for record in refusals] == ["910003"]


#: The README's first call (sdk/README.md), with this server's values.
FIRST_CALL = """
import sys
from ensu_client import Client

url, cert, key, cacert, client_id, teleservice, siren = sys.argv[1:]
connection = {"cert": cert, "key": key, "cacert": cacert, "client_id": client_id}
with Client(url, teleservice=teleservice, **connection) as client:
    print(client.mention_information().value.texte)
    document = next(client.iter_documents(siren=siren))
    client.download(document, "document.pdf")
print(document.identifiants.idensua)
"""


def test_the_readme_first_call_works_from_the_wheel(
    installed: Installed, server: tuple[Var, str], tmp_path: Path
) -> None:
    var, url = server
    files = (var.pki.client_cert(A.stem), var.pki.client_key(A.stem), var.pki.ca_cert)
    done = subprocess.run(
        [
            str(installed.python),
            "-c",
            FIRST_CALL,
            url,
            *map(str, files),
            A.client_id,
            A.id_teleservice,
            SIREN,
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    mention, idensua = done.stdout.strip().rsplit("\n", 1)
    assert mention
    (document,) = [document for document in var.of(SIREN) if document.idensua == idensua]
    assert (tmp_path / "document.pdf").read_bytes() == document.content


def test_the_wheel_declares_no_dependency_on_the_server(installed: Installed) -> None:
    script = "import importlib.metadata as m, json; print(json.dumps(m.requires('ensu-client')))"
    show = subprocess.run(
        [str(installed.python), "-c", script], capture_output=True, text=True, check=True
    )
    names = {re.split(r"[\s;<>=!~\[(]", requirement)[0] for requirement in json.loads(show.stdout)}
    assert {"httpx", "cryptography", "argon2-cffi"} <= names
    assert "ensu" not in names
