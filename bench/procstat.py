"""What the kernel says about a server process: CPU time and resident memory (Linux).

CPU is ``utime + stime`` of ``/proc/<pid>/stat`` (every thread of the process counted),
summed over the process and its direct children (nginx's workers), in clock ticks.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    text = (PROC / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (fields 14 and 15 of ``stat``)."""
    fields = _stat_fields(pid)
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (a scan of ``/proc``: no kernel option needed)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, ValueError, IndexError):
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with suppress(OSError):
            total += cpu_seconds(child)
    return total


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the main threads of ``pid`` and of its children (the event loop, nginx's
    worker) spent runnable but waiting for a CPU (``/proc/<pid>/schedstat``, field 2):
    the time other processes took from the server's core."""
    total = 0
    for process in (pid, *children(pid)):
        with suppress(OSError, IndexError, ValueError):
            total += int((PROC / str(process) / "schedstat").read_text().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """``VmRSS`` of ``pid`` in bytes (0 when the kernel does not report it)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests: the children if any (nginx), else ``pid``."""
    return children(pid) or [pid]
