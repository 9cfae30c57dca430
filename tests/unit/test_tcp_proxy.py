"""The failure tests' TCP proxy (:mod:`tests.support.tcp_proxy`) against an echo server:
pass-through, per-chunk delay, black hole, cut and back, on the same port."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy

#: Bounds a broken proxy only; a healthy one answers in microseconds.
TIMEOUT = 5.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[TcpProxy]:
    with TcpProxy(echo) as running:
        yield running


def connect(proxy: TcpProxy, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def round_trip(proxy: TcpProxy, payload: bytes = b"ping") -> tuple[bytes, float]:
    with connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        return receive(sock, len(payload)), time.monotonic() - started


def wait_until(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_pass_through_forwards_both_ways(proxy: TcpProxy) -> None:
    assert round_trip(proxy, b"hello")[0] == b"hello"
    big = bytes(range(256)) * 4096  # 1 MiB, many chunks
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(big,))
        sender.start()
        assert receive(sock, len(big)) == big
        sender.join(TIMEOUT)
    wait_until(lambda: proxy.stats().open == 0, "the pipes to close")
    assert proxy.stats().accepted == 2


def test_delay_applies_per_chunk_and_keeps_order(proxy: TcpProxy) -> None:
    proxy.delay(0.15)
    echoed, elapsed = round_trip(proxy)
    assert echoed == b"ping"
    assert 0.3 <= elapsed < 0.3 + 1.0  # once each way
    with connect(proxy) as sock:
        started = time.monotonic()
        for index in range(20):  # chunks sent in a row: one delay for all, not twenty
            sock.sendall(b"%02d" % index)
        proxy.delay(0.0)  # lowering the delay must not let later chunks overtake
        echoed = receive(sock, 40)
        elapsed = time.monotonic() - started
    assert echoed == b"".join(b"%02d" % index for index in range(20))
    assert elapsed < 0.3 + 1.0
    proxy.pass_through()
    assert round_trip(proxy)[1] < 0.15


def test_holding_counts_connections_waiting_on_a_pattern(proxy: TcpProxy) -> None:
    proxy.delay(30.0)
    with connect(proxy) as first, connect(proxy) as second, connect(proxy) as third:
        first.sendall(b"SELECT 1")
        second.sendall(b"SELECT 2")
        third.sendall(b"UPDATE 3")
        wait_until(lambda: proxy.stats().held_chunks == 3, "three held chunks")
        assert proxy.holding(b"SELECT") == 2
        assert proxy.holding(b"UPDATE") == 1
        proxy.cut()  # nobody waits 30 s
        assert proxy.stats().open == 0


def test_watch_counts_what_went_towards_the_target(proxy: TcpProxy) -> None:
    proxy.watch(b"alpha", b"beta")
    with connect(proxy) as sock:
        for payload in (b"alpha one", b"alpha two", b"gamma"):
            sock.sendall(payload)
            assert receive(sock, len(payload)) == payload  # one chunk each
    assert (proxy.seen(b"alpha"), proxy.seen(b"beta")) == (2, 0)


def test_black_hole_accepts_and_forwards_nothing(proxy: TcpProxy) -> None:
    with connect(proxy) as established:
        assert receive_ping(established)
        proxy.black_hole()
        with connect(proxy, timeout=0.3) as fresh:  # accepted...
            fresh.sendall(b"ping")
            with pytest.raises(TimeoutError):  # ...but never answered
                fresh.recv(4)
        established.settimeout(0.3)
        established.sendall(b"ping")
        with pytest.raises(TimeoutError):  # an open connection goes silent too
            established.recv(4)
    proxy.pass_through()
    assert round_trip(proxy)[0] == b"ping"


def receive_ping(sock: socket.socket) -> bool:
    sock.sendall(b"ping")
    return receive(sock, 4) == b"ping"


def test_cut_closes_open_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    with connect(proxy) as established:
        assert receive_ping(established)
        proxy.cut()
        assert proxy.stats().open == 0
        try:
            closed = established.recv(4) == b""
        except ConnectionResetError:
            closed = True
        assert closed
    with pytest.raises(ConnectionRefusedError):
        connect(proxy).close()
    proxy.pass_through()  # the same port serves again
    assert round_trip(proxy)[0] == b"ping"
    proxy.cut()
    proxy.delay(0.05)  # any mode reopens it
    assert round_trip(proxy)[0] == b"ping"


def test_target_down_closes_the_client() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with TcpProxy(("127.0.0.1", port)) as proxy, connect(proxy) as sock:
        try:
            closed = sock.recv(4) == b""
        except ConnectionResetError:
            closed = True
        assert closed


def test_close_stops_the_thread(echo: tuple[str, int]) -> None:
    proxy = TcpProxy(echo).start()
    sock = connect(proxy)
    try:
        assert receive_ping(sock)
        proxy.close()
        assert not any(thread.name == "tcp-proxy" for thread in threading.enumerate())
        with pytest.raises(ConnectionRefusedError):
            connect(proxy).close()
    finally:
        sock.close()
