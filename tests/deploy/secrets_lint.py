"""Find credentials in a compose file that have a default, a literal value, or may be empty.

The rule for docker-compose.yml: a credential is a required variable, ``${VAR:?message}``
(compose stops and prints the message when VAR is unset or empty), or a Docker secret
file. Nothing that could start a deployment with a password everyone knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.deploy.compose import command_of, environment_of, references, strings_of

# Environment variables and command options that carry a credential, by name.
CREDENTIAL = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|AUTH|PASS\b", re.IGNORECASE)
# Variables that may have a default: settings, not credentials (each is checked below).
NOT_SECRET = frozenset({"S3_BUCKET", "API_HOST_PORT", "FLOWER_HOST_PORT", "MINIO_HOST_PORT",
                        "MINIO_CONSOLE_HOST_PORT"})
# scheme://userinfo@host: the userinfo (user:password, :password or a token).
URL_USERINFO = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/@\s]*)@", re.IGNORECASE)
_REQUIRED_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*[^}\s][^}]*\}")


def only_required(text: str) -> bool:
    """Return whether ``text`` is nothing but required references (``${VAR:?message}``)."""
    return bool(text) and _REQUIRED_REF.sub("", text) == ""


def _has_literal(text: str) -> bool:
    """Return whether letters or digits remain once the required references are removed."""
    return re.search(r"[A-Za-z0-9]", _REQUIRED_REF.sub("", text)) is not None


def _secret_file(service: Mapping[str, Any], value: str) -> bool:
    """Return whether ``value`` is a Docker secret that ``service`` mounts."""
    names = {s if isinstance(s, str) else s.get("target") or s.get("source")
             for s in service.get("secrets") or ()}
    path = value.removeprefix("/run/secrets/")
    return value.startswith("/run/secrets/") and path in names


def findings(compose: Mapping[str, Any]) -> list[str]:
    """Return one line per credential of ``compose`` (as written, not interpolated) that
    has a default, a literal value or may be empty."""
    found: list[str] = []
    for where, text in strings_of(dict(compose)):
        for ref in references(text):
            if ref.name in NOT_SECRET and not CREDENTIAL.search(ref.name):
                continue
            if not ref.required:
                found.append(f"{where}: ${{{ref.name}{ref.op}{ref.arg}}} may be empty or "
                             f"defaulted; write ${{{ref.name}:?set {ref.name} in .env}}")
        for userinfo in URL_USERINFO.findall(text):
            secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
            if not only_required(secret):
                found.append(f"{where}: the URL's credential {secret!r} is not a required "
                             "variable")
    for name, service in (compose.get("services") or {}).items():
        for var, value in environment_of(service).items():
            if not CREDENTIAL.search(var) or _secret_file(service, value):
                continue
            if not references(value) or _has_literal(value):
                found.append(f"services.{name}.environment.{var}: a literal credential; "
                             f"use ${{VAR:?message}} or a Docker secret")
        argv = command_of(service)
        for option, value in zip(argv, argv[1:], strict=False):
            if option.startswith("-") and CREDENTIAL.search(option) and not only_required(value):
                found.append(f"services.{name}.command: {option} takes a literal credential")
    return found
