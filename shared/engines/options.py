"""Engine extras (``databases[].options``): which keys each engine takes, and their checks.

One table used by the config loader and the API, so a typo such as ``authSorce`` is
a 4xx or a config error naming the key, never a dump that fails at 3 AM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], str | None]

MONGO_AUTH_MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN", "MONGODB-X509", "GSSAPI",
                         "MONGODB-AWS")
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    return None


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _mongo_uri(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith(("mongodb://", "mongodb+srv://")):
        return "must be a connection string starting with mongodb:// or mongodb+srv://"
    return None


ENGINE_OPTIONS: dict[str, dict[str, Check]] = {
    "postgres": {
        "sslmode": _one_of(PG_SSLMODES),
        "pg_bin_dir": _text,
    },
    "mongodb": {
        "authSource": _text,
        "authMechanism": _one_of(MONGO_AUTH_MECHANISMS),
        "tls": _flag,
        "tlsCAFile": _text,
        "tlsInsecure": _flag,
        "replicaSet": _text,
        "oplog": _flag,
        "uri": _mongo_uri,
        # false: restores skip index builds (FerretDB 1.x rejects the specs mongorestore sends)
        "restore_indexes": _flag,
    },
}


def option_errors(engine: str, options: Mapping[str, Any] | None) -> dict[str, str]:
    """Return ``{key: message}`` for each unknown or invalid option of ``engine``."""
    known = ENGINE_OPTIONS.get(engine, {})
    errors: dict[str, str] = {}
    for key, value in (options or {}).items():
        check = known.get(key)
        if check is None:
            allowed = ", ".join(sorted(known)) or "none"
            errors[key] = f"unknown option for engine {engine} (allowed: {allowed})"
        elif (problem := check(value)) is not None:
            errors[key] = problem
    return errors


def uri_password(uri: str) -> str | None:
    """Return the password inside a ``mongodb://user:password@…`` string, if any."""
    scheme, sep, rest = uri.partition("://")
    userinfo, at, _ = rest.partition("@")
    if not sep or not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def public_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``options`` safe to show: a password inside ``uri`` becomes ``***``."""
    shown = dict(options or {})
    uri = shown.get("uri")
    if isinstance(uri, str) and uri_password(uri):
        scheme, _, rest = uri.partition("://")
        userinfo, _, hosts = rest.partition("@")
        shown["uri"] = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}"
    return shown
