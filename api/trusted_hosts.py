"""Answer only requests addressed to us by a trusted name: the DNS rebinding defence.

A web page on ``evil.example`` can make its name resolve to 127.0.0.1 (or to the
address of this API on the visitor's network) and then script requests to it from the
visitor's browser, past the same-origin policy: the browser believes it talks to
``evil.example``, and says so in the ``Host`` header. Refusing every ``Host`` we do
not know ends the attack there: 400, whatever the path.

Trusted by default: ``localhost``, ``127.0.0.1``, ``[::1]``, the address the server
is bound to, and when it is bound to every interface (``0.0.0.0``, ``::``) this
machine's host name and its addresses (in a container: the container's, so a
neighbour reaching it by address works). ``api.trusted_hosts`` adds names (the one
users type, the service name other containers use). An IP address is never a
rebinding vector (the browser's origin is then that address), so listing the ones an
operator uses is safe.

Flask (``TRUSTED_HOSTS``) does the comparison; the port is ignored.
"""

from __future__ import annotations

import socket

from flask import Flask, request
from werkzeug.exceptions import SecurityError

from api.errors import abort
from shared.config import Settings

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
EVERY_INTERFACE = ("", "0.0.0.0", "::", "[::]")


def trusted_hosts(settings: Settings, bind_host: str | None) -> list[str]:
    """Return the host names a request's ``Host`` may carry (without port)."""
    hosts = [*LOOPBACK]
    if bind_host in EVERY_INTERFACE:
        hosts += _this_machine()
    elif bind_host:
        hosts.append(_bracketed(bind_host.lower()))
    hosts += settings.api.trusted_hosts
    return list(dict.fromkeys(hosts))


def init_trusted_hosts(app: Flask, settings: Settings, bind_host: str | None) -> None:
    """Make ``app`` answer 400 to a request whose ``Host`` is not trusted.

    Its hook goes first of all (call this after the other ``init_*``): Flask finds the
    untrusted host while routing but raises only when dispatching, after the hooks, so
    the authentication hook would answer 401 first, and then 400 only to a caller with
    a key. A request for a name we do not serve gets nothing else from us.
    """
    app.config["TRUSTED_HOSTS"] = trusted_hosts(settings, bind_host)
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_untrusted_host)


def _refuse_untrusted_host() -> None:
    if isinstance(request.routing_exception, SecurityError):
        host = request.headers.get("Host", "")
        abort(400, message=f"Host {host[:255]!r} is not trusted by this API; an operator who "
                           "serves it under that name adds it to api.trusted_hosts")


def _this_machine() -> list[str]:
    name = socket.gethostname().lower()
    names = [name]
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:  # a host name that does not resolve: the name alone, then
        return names
    return names + [_bracketed(str(info[4][0])) for info in infos]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
