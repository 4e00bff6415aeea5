"""A PostgreSQL wire proxy on 127.0.0.1 that counts statements and can add delay.

Apps connect to it over TCP instead of to the server; it forwards every byte to
the server (its Unix socket or a TCP address) and back. On the way in it parses
the frontend protocol and counts what costs a round trip: each Query ('Q',
simple protocol) and Execute ('E', extended protocol) message, with the SQL it
ran (a Query's text, or the statement its portal was bound to by Parse/Bind).
Counted, not assumed: what the drivers send, not what their docs say.

`delay` (seconds, settable while it runs) holds every chunk that long in each
direction before passing it on, as a network would: 0.0005 is about a 1 ms round
trip, a managed database in the same region. Chunks are queued, not serialised
behind the delay, so back-to-back messages overlap as on a real link. Threads,
not asyncio: `time.sleep` wakes within tens of microseconds, an epoll timeout
rounds up to whole milliseconds.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Untyped packets a client may send before its startup message.
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
PRE_STARTUP = {SSL_REQUEST, GSSENC_REQUEST}


class FrontendParser:
    """One client connection's messages, fed in chunks as they arrive."""

    def __init__(self, proxy: WireProxy, connection: int) -> None:
        self.proxy = proxy
        self.connection = connection
        self.buffer = bytearray()
        self.started = False  # past the startup packet: typed messages from here on
        self.prepared: dict[bytes, str] = {}  # statement name -> SQL
        self.bound: dict[bytes, str] = {}  # portal name -> SQL

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                (length,) = struct.unpack_from("!i", self.buffer)
                if len(self.buffer) < length:
                    return
                (code,) = struct.unpack_from("!i", self.buffer, 4)
                del self.buffer[:length]
                # SSL/GSS request: the server answers 'N' (the embedded one has no TLS)
                # and the real startup packet follows. Anything else was the startup.
                self.started = code not in PRE_STARTUP
                continue
            if len(self.buffer) < 5:
                return
            kind = bytes(self.buffer[0:1])
            (length,) = struct.unpack_from("!i", self.buffer, 1)
            if len(self.buffer) < 1 + length:
                return
            body = bytes(self.buffer[5 : 1 + length])
            del self.buffer[: 1 + length]
            self.message(kind, body)

    def message(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self.proxy.record(self.connection, body.split(b"\0", 1)[0].decode())
        elif kind == b"P":
            name, sql, _ = body.split(b"\0", 2)
            self.prepared[name] = sql.decode()
        elif kind == b"B":
            portal, statement, _ = body.split(b"\0", 2)
            self.bound[portal] = self.prepared.get(statement, "?")
        elif kind == b"E":
            portal = body.split(b"\0", 1)[0]
            self.proxy.record(self.connection, self.bound.get(portal, "?"))


class WireProxy:
    """Listens on 127.0.0.1 (a free port); `with WireProxy(upstream) as proxy:` runs it."""

    def __init__(self, upstream: str | tuple[str, int], delay: float = 0.0) -> None:
        self.upstream = upstream  # a Unix socket path, or (host, port)
        self.delay = delay
        self.statements = 0
        self.log: collections.deque[tuple[int, int, str]] = collections.deque(maxlen=1000)
        self.parse_errors = 0  # a client whose messages could not be parsed: counts are off
        self._lock = threading.Lock()
        self._last = 0.0  # when the last statement was counted
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    def record(self, connection: int, sql: str) -> None:
        with self._lock:
            self.statements += 1
            self.log.append((self.statements, connection, sql))
            self._last = time.perf_counter()

    def settle(self, quiet: float = 0.05, timeout: float = 5.0) -> None:
        """Wait until no statement came for `quiet` seconds: a session's ROLLBACK runs
        after its response is sent, and belongs to the request before, not the next."""
        deadline = time.perf_counter() + timeout
        while (now := time.perf_counter()) < deadline:
            with self._lock:
                idle = now - self._last
            if idle >= quiet:
                return
            time.sleep(quiet - idle)

    def mark(self) -> int:
        """The count now, once the apps are quiet: pass it to `since`."""
        self.settle()
        with self._lock:
            return self.statements

    def since(self, mark: int, *, at_least: int = 0, quiet: float = 0.05) -> tuple[int, list[str]]:
        """Statements counted since `mark`, and the SQL of those the log still holds:
        once `at_least` have come (5 s at most) and then none for `quiet` seconds."""
        deadline = time.perf_counter() + 5.0
        while self.statements - mark < at_least and time.perf_counter() < deadline:
            time.sleep(0.001)
        self.settle(quiet)
        with self._lock:
            return self.statements - mark, [sql for n, _, sql in self.log if n > mark]

    def __enter__(self) -> WireProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):  # wakes the accept() (close alone does not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.upstream)
            return server
        server = socket.create_connection(self.upstream)
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return server

    def _accept(self) -> None:
        number = 0
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                server = self._connect_upstream()
            except OSError:  # the server is down: so is this client's connection
                client.close()
                continue
            self._sockets += [client, server]
            number += 1
            parser = FrontendParser(self, number)
            for source, target, inspect in ((client, server, parser), (server, client, None)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
                self._spawn(self._read, source, chunks, inspect)
                self._spawn(self._write, target, chunks)

    def _read(
        self,
        source: socket.socket,
        chunks: queue.Queue[tuple[float, bytes]],
        parser: FrontendParser | None,
    ) -> None:
        try:
            while chunk := source.recv(65536):
                chunks.put((time.perf_counter() + self.delay, chunk))
                if parser is not None:
                    try:
                        parser.feed(chunk)
                    except (ValueError, struct.error, UnicodeDecodeError):
                        self.parse_errors += 1
                        parser = None  # forward the rest unparsed
        except OSError:
            pass
        chunks.put((0.0, b""))  # end of stream: the writer closes its side

    def _write(self, target: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        try:
            while True:
                due, chunk = chunks.get()
                if not chunk:
                    target.shutdown(socket.SHUT_WR)
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                target.sendall(chunk)
        except OSError:
            pass


def unix_socket(host_dir: str, port: int | None) -> str | None:
    """The server's socket file when `host_dir` is a directory (libpq's convention)."""
    path = Path(host_dir) / f".s.PGSQL.{port or 5432}"
    return str(path) if path.exists() else None
