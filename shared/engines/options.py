"""Engine extras (``databases[].options``): which keys each engine takes, and their checks.

One table used by the config loader and the API, so a typo such as ``authSorce`` is
a 4xx or a config error naming the key, never a dump that fails at 3 AM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

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
        # Roles and tablespaces beside the dump (shared/engines/pg_globals.py).
        "globals": _flag,
        "globals_passwords": _flag,
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


# Options that choose a program or a file on the worker: only config.yaml may set them.
# Through the API they would let a client run its own pg_dump or make a tool read a file.
CONFIG_ONLY_OPTIONS: dict[str, tuple[str, ...]] = {
    "postgres": ("pg_bin_dir",),
    "mongodb": ("tlsCAFile",),
}
# Mechanisms that authenticate with the worker's own ambient credentials (a Kerberos
# ticket, an AWS role) rather than the registered ones: config-only too.
AMBIENT_MECHANISMS = ("GSSAPI", "MONGODB-AWS")
# Keys of a MongoDB uri that name a file on the worker (the drivers ignore their case).
_URI_FILE_KEYS = ("tlscafile", "tlscertificatekeyfile", "tlscrlfile", "sslcafile",
                  "sslpemkeyfile", "sslcrlfile")
# Options that change what a tool does, not where it connects or how it authenticates.
BEHAVIOUR_OPTIONS = ("oplog", "restore_indexes", "globals", "globals_passwords")
CONFIG_ONLY = "is config-only: set it in config.yaml (it chooses a program or a file on the worker)"


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
    if (engine == "postgres" and (options or {}).get("globals_passwords") is True
            and (options or {}).get("globals") is not True and "globals_passwords" not in errors):
        errors["globals_passwords"] = "takes effect only with globals: true"
    return errors


def api_option_errors(engine: str, options: Mapping[str, Any] | None) -> dict[str, str]:
    """Return :func:`option_errors` plus what only ``config.yaml`` may set (API requests)."""
    errors = option_errors(engine, options)
    for key, value in (options or {}).items():
        if key in errors:
            continue
        if key in CONFIG_ONLY_OPTIONS.get(engine, ()):
            errors[key] = CONFIG_ONLY
        elif key == "globals_passwords" and engine == "postgres" and value is True:
            errors[key] = ("is config-only: it copies the password hash of every role on the "
                           "server into the backups")
        elif key == "authMechanism" and value in AMBIENT_MECHANISMS:
            errors[key] = (f"{value} is config-only: it authenticates with the worker's own "
                           "credentials")
        elif key == "uri" and (problem := _uri_problem(str(value))):
            errors[key] = problem
    return errors


def _uri_problem(uri: str) -> str | None:
    query = dict(parse_qsl(urlsplit(uri).query))
    for name, value in query.items():
        if name.lower() in _URI_FILE_KEYS:
            return f"{name} {CONFIG_ONLY}"
        if name.lower() == "authmechanism" and value in AMBIENT_MECHANISMS:
            return (f"authMechanism={value} is config-only: it authenticates with the "
                    "worker's own credentials")
    return None


def connection_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the options that say where and how to connect (all but ``BEHAVIOUR_OPTIONS``)."""
    return {k: v for k, v in (options or {}).items() if k not in BEHAVIOUR_OPTIONS}


def uri_hosts(uri: str) -> list[str]:
    """Return the hosts of a ``mongodb://`` uri, without ports (``[::1]`` as ``::1``)."""
    _, _, rest = uri.partition("://")
    hosts = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    return [unquote(_without_port(item)) for item in hosts.split(",") if item]


def _without_port(item: str) -> str:
    if item.startswith("["):
        return item[1:].split("]", 1)[0]
    return item.rsplit(":", 1)[0] if item.count(":") == 1 else item


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
