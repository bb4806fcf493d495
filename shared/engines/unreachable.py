"""Connection failures reported in one sentence: refused, timed out, no route, unknown host.

Telling these apart would turn the API into a port scanner of the worker's network (a
refused port answers at once with its own message, a filtered one times out, a web
server answers garbage), so a backup's ``error`` only says the server could not be
reached and the worker log keeps the tool's own words. What an operator needs to fix a
registration stays as the tool said it: a failed authentication, a missing password or
database, a TLS refusal. Those come from a database server that answered.
"""

from __future__ import annotations

import re

# libpq, as pg_dump, pg_restore and psycopg print it (one line per address tried).
_LIBPQ_ATTEMPT = re.compile(r"connection to server (?:at|on socket) .*? failed:")
_LIBPQ_UNREACHABLE = ("could not translate host name", "could not connect to server")
# Case-sensitive on purpose: "pg_dump: error:" is the tool's prefix, "ERROR:" the server's.
_SERVER_ANSWERED = re.compile(
    r"FATAL:|ERROR:|fe_sendauth|server does not support SSL|certificate|"
    r"password authentication failed")
# The MongoDB Go driver (mongodump, mongorestore).
_MONGO_UNREACHABLE = re.compile(
    r"server selection error|no reachable servers|no such host|connection refused|"
    r"i/o timeout|context deadline exceeded", re.IGNORECASE)
_MONGO_ANSWERED = re.compile(r"auth error|AuthenticationFailed|Authentication failed")


def unreachable_message(endpoint: str) -> str:
    """Return the one sentence stored for any connect-level failure to ``endpoint``."""
    return (f"could not connect to the database server at {endpoint} "
            "(details in the worker log)")


def is_unreachable(text: str) -> bool:
    """Tell whether a tool's error output says only that no database server answered."""
    if _SERVER_ANSWERED.search(text) or _MONGO_ANSWERED.search(text):
        return False
    return (bool(_LIBPQ_ATTEMPT.search(text))
            or any(phrase in text for phrase in _LIBPQ_UNREACHABLE)
            or bool(_MONGO_UNREACHABLE.search(text)))
