"""``make setup`` on a machine that has nothing but Python 3.11: no uv anywhere.

The README promises two commands on a fresh Debian machine. The first of them once
failed there: the Makefile resolved uv's path when make parsed it, before pip had
installed uv, and looked where pip had not put it. Each test clones the repository,
takes every directory that holds a ``uv`` out of ``PATH``, points ``HOME`` at an empty
directory, and runs ``make setup`` once:

- as this user (root in CI), with a Python whose environment has no uv: pip installs uv
  into it and ``python3 -m uv`` runs it;
- as an unprivileged user with Debian's own ``/usr/bin/python3`` (PEP 668's marker:
  plain ``pip install`` is refused there), where uv lands in ``~/.local``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: uv sync of the whole locked environment, a download of uv itself for the user run.
TIMEOUT_SECONDS = 900
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

pytestmark = pytest.mark.slow


def _without_uv(directories: list[str]) -> list[str]:
    """``directories`` less those that hold an executable ``uv`` (or a pyenv shim)."""
    kept = []
    for directory in directories:
        if (Path(directory) / "uv").exists() or ".pyenv" in directory:
            continue
        kept.append(directory)
    return kept


def _environment(path: list[str], home: Path) -> dict[str, str]:
    """This machine's environment (its CA bundle, its package index settings) with
    ``PATH`` and ``HOME`` replaced and nothing left of the running uv or venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "UV"  # uv run exports its own path; make would take it
        and not key.startswith(("UV_", "VIRTUAL_ENV", "PYTHON", "PYENV", "ENSU_", "CI"))
    }
    env.update(PATH=os.pathsep.join(path), HOME=str(home), LANG="C.UTF-8")
    return env


def _has_uv(python: Path) -> bool:
    probe = [str(python), "-m", "uv", "--version"]
    return subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0


def _clone(destination: Path) -> None:
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(destination)],
        check=True,
        timeout=120,
    )


def _make_setup(clone: Path, env: dict[str, str], user: str | None = None) -> str:
    command = ["make", "-C", str(clone), "setup"]
    if user is not None:
        command = ["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in env.items()]]
        command += ["make", "-C", str(clone), "setup"]
        env = {key: env[key] for key in ("PATH", "LANG")}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"make setup failed the first time:\n{output}"
    return output


def _assert_installed(clone: Path, user: str | None = None) -> None:
    command = [str(clone / ".venv/bin/ensu"), "--help"]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout
    assert (clone / "var" / "ensu.db").exists()  # the migrations ran


def test_setup_installs_uv_into_a_python_that_has_none(tmp_path: Path) -> None:
    clone, home, python = tmp_path / "clone", tmp_path / "home", tmp_path / "python"
    home.mkdir()
    _clone(clone)
    subprocess.run([sys.executable, "-m", "venv", str(python)], check=True, timeout=120)
    assert not _has_uv(python / "bin/python3")
    path = [str(python / "bin"), *_without_uv(list(SYSTEM_PATH))]
    assert shutil.which("uv", path=os.pathsep.join(path)) is None
    env = _environment(path, home)
    # uv's download cache is not where uv is looked for: sharing it keeps the test fast.
    cache = Path(os.environ.get("UV_CACHE_DIR", Path.home() / ".cache" / "uv"))
    if cache.is_dir():
        env["UV_CACHE_DIR"] = str(cache)
    output = _make_setup(clone, env)
    assert "installing it with" in output  # scripts/uv did install it
    _assert_installed(clone)
    assert _has_uv(python / "bin/python3")


def test_setup_as_an_unprivileged_user_with_debians_python() -> None:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root (runuser) to run make as another user")
    system_python = Path("/usr/bin/python3")
    probe = subprocess.run(
        [system_python, "-c", "import sys, pip; print(sys.version_info[:2] >= (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.stdout.strip() != "True":
        pytest.skip("no Debian python3 >= 3.11 with pip at /usr/bin/python3")
    user = "nobody"
    # pytest's tmp_path sits under root's 0700 directory: the user gets one under /tmp.
    with tempfile.TemporaryDirectory(prefix="ensu-fresh-") as scratch:
        base = Path(scratch)
        base.chmod(0o755)
        clone, home = base / "clone", base / "home"
        home.mkdir()
        _clone(clone)
        subprocess.run(["chown", "-R", f"{user}:", str(base)], check=True)
        env = _environment(_without_uv(list(SYSTEM_PATH)), home)
        _make_setup(clone, env, user=user)
        _assert_installed(clone, user=user)
        local = home / ".local"
        assert (local / "bin" / "uv").exists() or any(local.glob("lib/*/site-packages/uv"))
