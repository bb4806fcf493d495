"""A fake PostgreSQL server that asks every client for its password in clear text.

It speaks just enough of the protocol: it declines SSL and GSS encryption (``N``),
answers the startup message with AuthenticationCleartextPassword (``R``, code 3), and
records everything each client sends, so a test can tell whether a password reached it
(an attacker's server does exactly this to collect passwords).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CLEARTEXT_PASSWORD = b"R" + struct.pack("!ii", 8, 3)
AUTH_FAILED = b"".join([b"SFATAL\0", b"C28P01\0", b"Mpassword authentication failed\0", b"\0"])


@dataclass
class CleartextTrap:
    host: str = "127.0.0.1"
    connections: int = 0
    received: list[bytes] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    _server: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.getsockname()[1])

    def start(self) -> CleartextTrap:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((self.host, 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()

    def everything(self) -> bytes:
        with self._lock:
            return b"".join(self.received)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        seen = bytearray()
        try:
            while True:  # SSLRequest / GSSENCRequest first, then the startup message
                length = struct.unpack("!i", self._read(conn, 4, seen))[0]
                body = self._read(conn, length - 4, seen)
                code = struct.unpack("!i", body[:4])[0]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    conn.sendall(b"N")
                    continue
                break
            conn.sendall(CLEARTEXT_PASSWORD)
            kind = self._read(conn, 1, seen)
            length = struct.unpack("!i", self._read(conn, 4, seen))[0]
            body = self._read(conn, length - 4, seen)
            if kind == b"p":
                with self._lock:
                    self.passwords.append(body.rstrip(b"\0").decode(errors="replace"))
            conn.sendall(b"E" + struct.pack("!i", len(AUTH_FAILED) + 4) + AUTH_FAILED)
        except (OSError, struct.error):
            pass  # the client hung up: what it sent so far is recorded
        finally:
            with self._lock:
                self.received.append(bytes(seen))
            conn.close()

    @staticmethod
    def _read(conn: socket.socket, size: int, seen: bytearray) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
            seen += chunk
        return data
