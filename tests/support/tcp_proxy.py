"""A TCP proxy whose link can be made slow, black-holed or cut while traffic flows.

The kernel of the test machines has no ``netem``, so the failure tests put this proxy
between the app and PostgreSQL or Redis and change its behaviour at run time::

    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        ...  # point the app at 127.0.0.1:{proxy.port}
        proxy.delay(0.5)      # every chunk, either way, is delivered 0.5 s after it arrived
        proxy.black_hole()    # connections accepted, nothing forwarded either way
        proxy.cut()           # every open connection closed, new ones refused
        proxy.pass_through()  # back to normal (listening again after a cut)

It runs its own asyncio loop in a daemon thread, so it serves synchronous tests as well
as apps running in other threads. Every control method takes effect before it returns:
after ``cut()`` no connection is open any more and a new one is refused.

Delays are per chunk, like ``netem delay``: a chunk read at ``t`` is written at ``t + d``
(never before an earlier chunk of the same direction), so a round trip costs ``2 d`` and
a stream keeps its throughput. The port is kept while the proxy is cut: a socket bound
to it (not listening, ``SO_REUSEPORT``) makes connections refused instead of letting the
system give the port to someone else, and the next listener binds it again.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

#: Bounds a control call on a healthy proxy (they take microseconds).
CONTROL_TIMEOUT = 10.0

T = TypeVar("T")


class Mode(enum.Enum):
    PASS = "pass"
    BLACK_HOLE = "black_hole"
    CUT = "cut"


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """What the proxy has seen: connections accepted since it started, open now, and
    chunks read but not yet delivered (held by the delay)."""

    accepted: int
    open: int
    held_chunks: int


class _Side(asyncio.Protocol):
    """One of the two connections of a pipe: ``client`` (accepted) or ``target``."""

    def __init__(self, pipe: _Pipe, name: str) -> None:
        self.pipe = pipe
        self.name = name

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.pipe.attach(self.name, transport)

    def data_received(self, data: bytes) -> None:
        self.pipe.received(self.name, data)

    def eof_received(self) -> bool:
        self.pipe.ended(self.name)
        return False  # close our side too: neither PostgreSQL nor Redis half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.ended(self.name)


_PEER = {"client": "target", "target": "client"}


class _Pipe:
    """A client connection and its connection to the target, with one queue per
    direction (keyed by the side the data goes to). ``None`` in a queue closes that side
    once what came before it is delivered."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.transports: dict[str, asyncio.Transport | None] = {"client": None, "target": None}
        self.queues: dict[str, deque[tuple[float, bytes | None]]] = {
            "client": deque(),
            "target": deque(),
        }
        self.last: dict[str, float] = {"client": 0.0, "target": 0.0}
        self.timers: dict[str, asyncio.TimerHandle | None] = {"client": None, "target": None}
        self.ended_sides: set[str] = set()
        #: Accepted while black-holed: never connected to the target, reads discarded.
        self.dead = False

    def attach(self, name: str, transport: asyncio.Transport) -> None:
        if self not in self.proxy.pipes:  # cut while this side was connecting
            transport.abort()
            return
        self.transports[name] = transport
        self._schedule(name)

    def received(self, source: str, data: bytes) -> None:
        if self.dead or self.proxy.mode is not Mode.PASS:
            return  # black hole: read and forget
        if source == "client":
            self.proxy.note(data)
        self._enqueue(_PEER[source], data)

    def ended(self, source: str) -> None:
        if source in self.ended_sides:
            return
        self.ended_sides.add(source)
        self.transports[source] = None
        self.queues[source].clear()  # nobody left to deliver to
        self._cancel(source)
        if self.dead or len(self.ended_sides) == 2:
            self.abort()
            return
        self._enqueue(_PEER[source], None)

    def abort(self) -> None:
        """Close both sides now, dropping whatever is held."""
        self.proxy.pipes.discard(self)
        for name, transport in self.transports.items():
            self._cancel(name)
            self.queues[name].clear()
            if transport is not None:
                transport.abort()
            self.transports[name] = None
        self.ended_sides = {"client", "target"}

    def held(self, destination: str) -> list[bytes]:
        return [data for _, data in self.queues[destination] if data is not None]

    def _enqueue(self, destination: str, data: bytes | None) -> None:
        if destination in self.ended_sides:
            return
        at = max(self.loop.time() + self.proxy.latency, self.last[destination])
        self.last[destination] = at
        self.queues[destination].append((at, data))
        self._schedule(destination)

    def _schedule(self, destination: str) -> None:
        queue = self.queues[destination]
        if self.timers[destination] is None and queue and self.transports[destination]:
            self.timers[destination] = self.loop.call_at(queue[0][0], self._drain, destination)

    def _drain(self, destination: str) -> None:
        self.timers[destination] = None
        queue, now = self.queues[destination], self.loop.time()
        while queue and queue[0][0] <= now:
            transport = self.transports[destination]
            if transport is None:
                return
            _, data = queue.popleft()
            if data is None:
                transport.close()
            else:
                transport.write(data)
        self._schedule(destination)

    def _cancel(self, name: str) -> None:
        timer = self.timers[name]
        if timer is not None:
            timer.cancel()
            self.timers[name] = None


class TcpProxy:
    """Forwards ``127.0.0.1:{port}`` to ``target``; see the module docstring."""

    def __init__(self, target: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.mode = Mode.PASS
        self.latency = 0.0
        self.accepted = 0
        self.pipes: set[_Pipe] = set()
        self.watched: dict[bytes, int] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        # Keeps the port while no listener is open (see the module docstring).
        self._placeholder = self._socket()
        self._placeholder.bind((host, 0))
        self.port: int = self._placeholder.getsockname()[1]
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._await(self._listen())
        return self

    def close(self) -> None:
        """Close every connection and the listener, then stop the loop and its thread."""
        if self._thread.is_alive():
            self._await(self._shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CONTROL_TIMEOUT)
        if not self.loop.is_running():
            self.loop.close()
        self._placeholder.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- control ---------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward at once (listening again if cut)."""
        self._await(self._set(Mode.PASS, 0.0))

    def delay(self, seconds: float) -> None:
        """Deliver each chunk read from now on ``seconds`` after it arrived, both ways."""
        if seconds < 0:
            raise ValueError("a delay is not negative")
        self._await(self._set(Mode.PASS, seconds))

    def black_hole(self) -> None:
        """Accept connections, forward nothing either way (what is read is discarded)."""
        self._await(self._set(Mode.BLACK_HOLE, 0.0))

    def cut(self) -> None:
        """Close every open connection and refuse new ones, until another mode is set."""
        self._await(self._cut())

    def stats(self) -> ProxyStats:
        def read() -> ProxyStats:
            held = sum(len(pipe.held(name)) for pipe in self.pipes for name in _PEER)
            return ProxyStats(self.accepted, len(self.pipes), held)

        return self._call(read)

    def watch(self, *patterns: bytes) -> None:
        """Count, from now on, the chunks forwarded towards the target that contain each
        of ``patterns`` (see :meth:`seen`)."""

        def add() -> None:
            for pattern in patterns:
                self.watched.setdefault(pattern, 0)

        self._call(add)

    def seen(self, pattern: bytes) -> int:
        """How many chunks containing ``pattern`` (watched) went towards the target: e.g.
        whether a request's query, with its parameter, has reached the database."""
        return self._call(lambda: self.watched[pattern])

    def note(self, data: bytes) -> None:
        """(On the loop) count ``data`` for the watched patterns it contains."""
        for pattern in self.watched:
            if pattern in data:
                self.watched[pattern] += 1

    def holding(self, pattern: bytes) -> int:
        """How many connections hold (delay) a chunk towards the target containing
        ``pattern``: e.g. how many clients are waiting on a given query now."""

        def count() -> int:
            return sum(any(pattern in data for data in pipe.held("target")) for pipe in self.pipes)

        return self._call(count)

    # -- on the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _await(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop; its result, once done."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CONTROL_TIMEOUT)

    def _call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the loop (where the pipes live); its result."""

        async def call() -> T:
            return function()

        return self._await(call())

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = self._socket()
        sock.bind((self.host, self.port))
        self._server = await self.loop.create_server(
            lambda: _Side(self._accept(), "client"), sock=sock, backlog=128
        )

    async def _set(self, mode: Mode, latency: float) -> None:
        self.mode, self.latency = mode, latency
        await self._listen()

    async def _cut(self) -> None:
        self.mode = Mode.CUT
        if self._server is not None:
            self._server.close()  # the listening socket closes now: connections refused
            self._server = None
        for pipe in list(self.pipes):
            pipe.abort()
        await asyncio.sleep(0)  # let the aborted transports close their sockets now

    async def _shutdown(self) -> None:
        await self._cut()
        for task in list(self._tasks):  # connections to the target still being made
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self) -> _Pipe:
        pipe = _Pipe(self)
        self.pipes.add(pipe)
        self.accepted += 1
        if self.mode is Mode.BLACK_HOLE:
            pipe.dead = True
        else:
            task = self.loop.create_task(self._connect(pipe))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return pipe

    async def _connect(self, pipe: _Pipe) -> None:
        host, port = self.target
        try:
            await self.loop.create_connection(lambda: _Side(pipe, "target"), host, port)
        except OSError:
            pipe.abort()  # the target refuses: so does the proxy, by closing
            return
        if pipe not in self.pipes:  # cut meanwhile (attach has closed the connection)
            return
