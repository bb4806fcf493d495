"""Which tool errors collapse into "could not connect" (strings as the tools print them)."""

from __future__ import annotations

import pytest

from shared.engines.unreachable import is_unreachable, unreachable_message

# Nothing answered as a database server: refused, unknown host, filtered, another service.
UNREACHABLE = [
    'pg_dump: error: connection to server at "127.0.0.1", port 44285 failed: Connection '
    "refused\n\tIs the server running on that host and accepting TCP/IP connections?",
    'pg_dump: error: could not translate host name "nohost.invalid" to address: Name or '
    "service not known",
    'pg_dump: error: connection to server at "10.255.255.1", port 5432 failed: timeout expired',
    'pg_dump: error: connection to server at "10.255.255.1", port 5432 failed: received '
    "invalid response to SSL negotiation: H",
    'pg_dump: error: connection to server at "127.0.0.1", port 59073 failed: server closed '
    "the connection unexpectedly\n\tThis probably means the server terminated abnormally",
    'connection failed: connection to server at "127.0.0.1", port 9 failed: No route to host',
    "Failed: can't create session: failed to connect to mongodb://127.0.0.1:44285/: server "
    "selection error: context deadline exceeded, current topology: { Type: Single, Servers: "
    "[{ Addr: 127.0.0.1:44285, Type: Unknown, Last error: dial tcp 127.0.0.1:44285: connect: "
    "connection refused }, ] }",
    "Failed: can't create session: failed to connect to mongodb://nohost.invalid:27017/: "
    "server selection error: context deadline exceeded, current topology: { Type: Single, "
    "Servers: [{ Addr: nohost.invalid:27017, Type: Unknown, Last error: dial tcp: lookup "
    "nohost.invalid on 10.255.255.53:53: no such host }, ] }",
]

# A database server answered: the operator needs these words to fix the registration.
ANSWERED = [
    'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
    'authentication failed for user "backup"',
    'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database '
    '"no_such_database" does not exist',
    'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no '
    "password supplied",
    'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: server does not '
    "support SSL, but SSL was required",
    "Failed: can't create session: failed to connect to mongodb://127.0.0.1:27017/: "
    "connection() error occurred during connection handshake: auth error: sasl conversation "
    'error: unable to authenticate using mechanism "PLAIN": (AuthenticationFailed) password '
    'authentication failed for user "backup"',
    # Not a connection failure at all.
    'pg_dump: error: query failed: ERROR:  permission denied for table "cards"',
    "pg_dump: error: aborting because of server version mismatch",
]


@pytest.mark.parametrize("text", UNREACHABLE)
def test_connect_level_failures_collapse(text: str) -> None:
    assert is_unreachable(text)


@pytest.mark.parametrize("text", ANSWERED)
def test_answers_of_a_database_server_stay(text: str) -> None:
    assert not is_unreachable(text)


def test_the_one_sentence_names_only_the_registered_endpoint() -> None:
    assert unreachable_message("db.internal:5432") == (
        "could not connect to the database server at db.internal:5432 "
        "(details in the worker log)")
