"""The external programs the bench drives, installed by ``bench/tools.sh`` when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

TOOLS_SCRIPT = Path(__file__).with_name("tools.sh")
#: Bounds apt-get: an install that hangs must not hang the bench.
INSTALL_TIMEOUT = 600


class BenchError(Exception):
    """The bench cannot run as asked; the message tells the user why and what to do."""


@dataclass(frozen=True, slots=True)
class Tools:
    wrk: str
    nginx: str
    #: ``None``: latency at a fixed rate is reported as unavailable, not faked.
    h2load: str | None
    redis_server: str | None
    #: ``None`` on a one-core machine: nothing is pinned (the output says so).
    taskset: str | None

    def pinned(self, core: int, command: list[str]) -> list[str]:
        """``command`` pinned to ``core`` (``taskset -c``), when there are two cores."""
        if self.taskset is None:
            return command
        return [self.taskset, "-c", str(core), *command]


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and Path(f"/usr/sbin/{name}").exists():
        return f"/usr/sbin/{name}"
    return found


def _missing() -> list[str]:
    names = ("wrk", "h2load", "nginx", "redis-server", "taskset")
    return [name for name in names if _which(name) is None]


def two_cores() -> bool:
    """True when this process may run on cores 0 and 1 (the server's and the load's)."""
    return {0, 1} <= os.sched_getaffinity(0)


def ensure_tools(console: Console) -> Tools:
    """The tools, after installing the missing ones with ``bench/tools.sh`` (Debian)."""
    missing = _missing()
    if missing:
        console.print(f"[yellow]missing tools: {', '.join(missing)}; running {TOOLS_SCRIPT}")
        try:
            subprocess.run(["bash", str(TOOLS_SCRIPT)], check=True, timeout=INSTALL_TIMEOUT)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            console.print(f"[yellow]{TOOLS_SCRIPT} failed ({error}); going on with what exists")
    wrk, nginx = _which("wrk"), _which("nginx")
    if wrk is None or nginx is None:
        raise BenchError(
            "wrk and nginx are required: as root, `bash bench/tools.sh` installs them"
            " (apt-get install -y wrk nginx)"
        )
    taskset = _which("taskset") if two_cores() else None
    return Tools(
        wrk=wrk,
        nginx=nginx,
        h2load=_which("h2load"),
        redis_server=_which("redis-server"),
        taskset=taskset,
    )


def version_of(command: list[str]) -> str:
    """The first line a tool prints about its version, or ``"?"``."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"
