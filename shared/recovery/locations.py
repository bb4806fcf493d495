"""Where ``backup-api recover`` reads from and restores into, as the operator names them.

Storage (``--storage``):
- a config file (``config.yaml``): its ``storage`` section, as the service used it;
- ``file:///path`` or a plain directory: local storage rooted there;
- ``s3://bucket[/prefix]?endpoint=URL&region=R&path_style=true|false``: S3 or a
  compatible store. Credentials come from the standard AWS environment variables
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) or the
  other places boto3 looks (``~/.aws``, an instance role), never from the URL: a
  command line is visible to every user of the machine (``ps``).

Restore target (``--to``): ``postgresql://user@host:port/dbname?sslmode=…`` or
``mongodb://user@host:port/dbname?authSource=…``. The password may be in the URL, but
``PGPASSWORD`` (PostgreSQL) or ``MONGODB_PASSWORD`` (MongoDB) keeps it off the command
line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from shared.config import DEFAULT_PORTS, S3Settings, load_settings
from shared.engines import Target
from shared.errors import ConfigError
from shared.storage import LocalStorage, Storage, make_storage

PASSWORD_VARIABLES = {"postgres": "PGPASSWORD", "mongodb": "MONGODB_PASSWORD"}
_SCHEMES = {"postgres": "postgres", "postgresql": "postgres", "mongodb": "mongodb"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Query parameters of a target URL that become engine options (as in config.yaml).
_OPTIONS = {"postgres": ("sslmode",),
            "mongodb": ("authSource", "authMechanism", "replicaSet", "tls", "tlsCAFile",
                        "tlsInsecure")}


def open_storage(spec: str, env: Mapping[str, str] | None = None) -> Storage:
    """Return the storage ``spec`` names; raise ``ConfigError`` saying what is wrong."""
    env = os.environ if env is None else env
    parts = urlsplit(spec)
    if parts.scheme == "s3":
        return _s3(spec)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"--storage {spec}: a file URL names a local path "
                              "(file:///path)")
        return _local(unquote(parts.path))
    if parts.scheme:
        raise ConfigError(f"--storage: unknown scheme {parts.scheme!r}: give a config file, "
                          "file:///path or s3://bucket/prefix?endpoint=…")
    path = Path(spec)
    if path.is_dir():
        return _local(spec)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return make_storage(load_settings(spec, env))
    raise ConfigError(f"--storage {spec}: neither a config file nor a directory")


def _local(path: str) -> Storage:
    if not os.path.isdir(path):
        raise ConfigError(f"--storage: {path} is not a directory")
    return LocalStorage(path)


def _s3(spec: str) -> Storage:
    from shared.storage.s3 import S3Storage

    parts = urlsplit(spec)
    if parts.username or parts.password:
        raise ConfigError("--storage: put S3 credentials in AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, not in the URL (a command line shows in ps)")
    if not parts.hostname:
        raise ConfigError(f"--storage {spec}: name a bucket (s3://bucket/prefix)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"endpoint", "region", "path_style"})
    if unknown:
        raise ConfigError(f"--storage: unknown parameter {', '.join(unknown)} (endpoint, "
                          "region, path_style)")
    settings = S3Settings(bucket=parts.netloc, prefix=unquote(parts.path).strip("/"),
                          endpoint_url=query.get("endpoint"), region=query.get("region"),
                          path_style=_flag(query.get("path_style"), "path_style"))
    return S3Storage(settings)


def target_from_url(url: str, env: Mapping[str, str] | None = None) -> Target:
    """Return how to reach the database ``url`` names; raise ``ConfigError`` if it cannot.

    Messages never repeat the URL: it may hold a password.
    """
    env = os.environ if env is None else env
    parts = urlsplit(url)
    engine = _SCHEMES.get(parts.scheme)
    if engine is None:
        raise ConfigError("--to: a postgresql:// or mongodb:// URL")
    try:
        port = parts.port or DEFAULT_PORTS[engine]
    except ValueError:
        raise ConfigError("--to: the port is not a number") from None
    if not parts.hostname or "," in parts.netloc:
        raise ConfigError("--to: name one server (host[:port]); for a replica set add "
                          "?replicaSet=NAME")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError("--to: name the target database (…/dbname)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - set(_OPTIONS[engine]))
    if unknown:
        raise ConfigError(f"--to: unsupported parameter {', '.join(unknown)} "
                          f"(supported: {', '.join(_OPTIONS[engine])})")
    options: dict[str, object] = dict(query)
    for flag in ("tls", "tlsInsecure"):
        if flag in query:
            options[flag] = _flag(query[flag], flag)
    password = unquote(parts.password) if parts.password is not None else None
    return Target(engine=engine, host=parts.hostname, port=port, database_name=name,
                  username=unquote(parts.username) if parts.username else None,
                  password=password or env.get(PASSWORD_VARIABLES[engine]) or None,
                  options=options)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{name}: true or false")


__all__ = ["PASSWORD_VARIABLES", "open_storage", "target_from_url"]
