"""Run a real uvicorn server in a background thread (tests, benchmarks, the SDK's tests).

The listening socket is bound before the server starts, on a port the system picks, so
parallel runs never race for a port and the caller knows the port before the first request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

#: Only bounds a broken start-up; a healthy server is up in milliseconds.
STARTUP_TIMEOUT = 60.0


@contextmanager
def serving(config: uvicorn.Config, *, host: str = "127.0.0.1") -> Iterator[int]:
    """Serve ``config`` on ``host`` and a free port; yield the port; stop on exit."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    port: int = listener.getsockname()[1]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield port
    finally:
        server.should_exit = True
        thread.join()
        listener.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped during start-up (see its log)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start within {STARTUP_TIMEOUT:.0f} s")
        time.sleep(0.01)
