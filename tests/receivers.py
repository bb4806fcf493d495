"""Real receivers of notifications for the tests: an HTTP server and an SMTP server.

``HttpReceiver`` is a ``http.server`` on a free port that records every request and
answers with the statuses it is given in turn (then 200); ``SmtpReceiver`` is an
``aiosmtpd`` server that records every message and, when given credentials, accepts
only those (AUTH over plain TCP, as a local relay may allow).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.services import free_port


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """Record POSTs; answer each with the next of ``answers`` (200 once they run out)."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = list(answers or [])
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 60) -> list[Received]:
        """Return the requests once there are ``count`` of them."""
        return _wait(lambda: self.requests if len(self.requests) >= count else None,
                     timeout, f"{count} requests at {self.url}")


@dataclass
class SmtpReceiver:
    """An SMTP server recording messages; with ``login`` it requires that AUTH."""

    login: tuple[str, str] | None = None
    port: int = field(default_factory=free_port)
    messages: list[tuple[Envelope, Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session,  # noqa: N802 - aiosmtpd's name
                          envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((envelope, message_from_bytes(content)))
        return "250 Message accepted"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append(user)
        # handled=False: aiosmtpd answers 535 itself (by default it leaves that to us).
        return AuthResult(success=self.login == (user, password), handled=False)

    def __enter__(self) -> SmtpReceiver:
        options: dict[str, Any] = {}
        if self.login:
            # Plain TCP, like a local relay: the tests have no certificate to offer.
            options = {"authenticator": self._authenticate, "auth_required": True,
                       "auth_require_tls": False}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def wait(self, count: int, timeout: float = 60) -> list[tuple[Envelope, Message]]:
        """Return the messages once there are ``count`` of them."""
        return _wait(lambda: self.messages if len(self.messages) >= count else None,
                     timeout, f"{count} messages at SMTP port {self.port}")


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return list(found)
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
