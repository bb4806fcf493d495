"""Serve the API with waitress, so slow or half-open clients cost a socket, not a thread.

Gunicorn's threaded worker handed each new connection to a thread that then waited
for the request, so eight clients that connected and sent nothing took every thread
and ``/health`` stopped answering. Waitress reads requests in its event loop and gives
one to a thread only when it is complete (headers and body), so a client that trickles
or never finishes its request holds no thread. The limits, and why:

- ``CONNECTIONS`` open connections at most; past that new ones wait in the kernel's
  backlog until some close. The open-files limit is raised to cover them.
- A connection with no request running and no byte in or out for ``IDLE_TIMEOUT``
  seconds is closed, so abandoned ones do not pile up. (One that trickles a byte now
  and then stays open, but it holds only a socket, and ``CONNECTIONS`` bounds those.)
- A request body is at most ``MAX_BODY`` bytes (the API takes small JSON bodies):
  past that waitress answers 413 before a thread ever sees it. It is above Flask's
  ``MAX_CONTENT_LENGTH`` (1 MiB), so a client just over the line gets the API's JSON
  413, and only absurd bodies are cut short by the server.
- Responses stream: the thread producing a download waits when ``OUTBUF_HIGH`` bytes
  are already queued for the client (spooled to a temporary file past 1 MiB), so a
  multi-gigabyte download or a slow reader keeps memory bounded.
- A client that stops reading a download (its TCP window stays closed) or vanishes
  is dropped by the kernel after ``STALLED_SEND`` seconds (``TCP_USER_TIMEOUT``, with
  keepalives for silent peers), which frees the thread that was writing to it.

Every request is logged as one JSON line (logger ``backup_api.access``) when its last
byte is sent, like every other line the process writes.
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from waitress.server import create_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from waitress.server import BaseWSGIServer, MultiSocketServer

access_log = logging.getLogger("backup_api.access")

CONNECTIONS = 10_000
IDLE_TIMEOUT = 60
MAX_BODY = 2 * 1024 * 1024
OUTBUF_HIGH = 4 * 1024 * 1024
STALLED_SEND = 120


def serve(app: WSGIApplication, host: str, port: int, threads: int) -> None:
    """Serve ``app`` on ``host:port`` with ``threads`` request threads until stopped."""
    server = make_server(app, listen(host, port), threads)
    # SIGTERM (docker stop, `backup-api run` stopping): leave the loop as on Ctrl-C, so
    # waitress lets the running requests finish (5 s at most) and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.print_listen("Serving on http://{}:{}")
    server.run()


def make_server(app: WSGIApplication, sock: socket.socket,
                threads: int) -> BaseWSGIServer | MultiSocketServer:
    """Return a waitress server of ``app`` on the listening ``sock``, not yet running."""
    return create_server(
        AccessLog(app), sockets=[sock], threads=threads,
        connection_limit=_connection_limit(), channel_timeout=IDLE_TIMEOUT,
        cleanup_interval=10, max_request_body_size=MAX_BODY,
        outbuf_high_watermark=OUTBUF_HIGH,
        # poll(), not select(): select() cannot watch file descriptors above 1023.
        asyncore_use_poll=True,
        # The Host a request without one is taken for (HTTP/1.0 health probes; browsers
        # always send one). Trusted, like every loopback name.
        server_name="localhost",
        # No "Server: waitress" header: what runs the API is nobody's business.
        ident="",
    )


def listen(host: str, port: int, stalled_send: int = STALLED_SEND) -> socket.socket:
    """Return a socket listening on ``host:port`` whose connections drop stalled peers.

    Accepted connections inherit the options (Linux): keepalives find a peer that
    vanished, and ``TCP_USER_TIMEOUT`` drops one that has not taken the data sent to it
    for ``stalled_send`` seconds.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux names; elsewhere only the portable options above apply.
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6),
                        ("TCP_USER_TIMEOUT", stalled_send * 1000)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    sock.bind(address)
    sock.listen(1024)
    return sock


def _connection_limit() -> int:
    """Raise the open-files limit for ``CONNECTIONS`` (a connection may use three: its
    socket and spooled request and response), and return the connections it allows."""
    per_connection, reserve = 3, 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTIONS * per_connection + reserve
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return CONNECTIONS
    return max(100, min(CONNECTIONS, (soft - reserve) // per_connection))


class AccessLog:
    """WSGI middleware: log each request once its answer is sent (or abandoned)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        status = ["-"]

        def capture(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = line.split(" ", 1)[0]
            return start_response(line, headers, exc_info)

        def done(sent: int) -> None:
            _log(environ, status[0], sent, time.monotonic() - started)

        return _Counted(self.app(environ, capture), done)


class _Counted:
    """The answer's body, counting the bytes that go out; ``done(sent)`` on close.

    A class, not a generator: the server calls ``close()`` even when it never
    iterated (a client gone before the first byte), and a generator that never
    started would skip its ``finally``.
    """

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body, self.done, self.sent = body, done, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)


def _log(environ: WSGIEnvironment, status: str, sent: int, seconds: float) -> None:
    query = environ.get("QUERY_STRING")
    path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
    remote = environ.get("REMOTE_ADDR", "-")
    access_log.info(
        '%s "%s %s %s" %s %d %.3fs', remote, method, path, protocol, status, sent, seconds,
        extra={"remote_addr": remote, "method": method, "path": path,
               "status": int(status) if status.isdigit() else None, "bytes": sent,
               "duration_seconds": round(seconds, 6)})
