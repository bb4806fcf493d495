"""Read docker-compose.yml and the Dockerfiles the way Docker would, without Docker."""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.services import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
NEW_ENV = REPO / "deploy" / "new-env.sh"
# Compose's interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
# ``${VAR:?message}``, ``${VAR?message}`` and the bare ``$VAR``.
_VAR = re.compile(r"\$(?:(?P<escape>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                  r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Reference:
    """One ``${...}`` in the compose file: the variable, its operator (``:?``, ``:-``...)."""

    name: str
    op: str  # "" for ${VAR} and $VAR
    arg: str

    @property
    def required(self) -> bool:
        """True for ``${VAR:?message}``: compose stops, naming VAR, when it is unset or empty."""
        return self.op == ":?" and bool(self.arg.strip())


def references(text: str) -> list[Reference]:
    """Return every variable reference in ``text`` (``$$`` is a literal dollar)."""
    return [Reference(m["name"] or m["bare"], m["op"] or "", m["arg"] or "")
            for m in _VAR.finditer(text) if not m["escape"]]


def strings_of(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(path, text)`` for every string in a parsed YAML tree."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings_of(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_of(item, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


def all_references(value: Any) -> list[Reference]:
    """Return every variable reference in a parsed YAML tree."""
    return [ref for _, text in strings_of(value) for ref in references(text)]


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Apply compose's interpolation to every string; a missing required value fails."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escape"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg, current = match["op"] or "", match["arg"] or "", env.get(name)
        unset_or_empty = not current
        if op in (":-", "-") and (current is None or (op == ":-" and unset_or_empty)):
            return arg
        if op in (":?", "?") and (current is None or (op == ":?" and unset_or_empty)):
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return current or ""

    return _VAR.sub(substitute, value)


class MissingVariable(AssertionError):
    """What ``docker compose`` stops with when a ``${VAR:?message}`` has no value."""


def raw_compose() -> dict[str, Any]:
    """Return the compose file as written, before interpolation."""
    return dict(yaml.safe_load(COMPOSE.read_text()))


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the compose file with variables resolved from ``env`` (a fresh .env if None)."""
    return dict(interpolate(raw_compose(), generated_env() if env is None else env))


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a .env file the simple way compose reads ours: ``NAME=value`` lines."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: {line!r} is not NAME=value"
            env[name.strip()] = value
    return env


def generated_env() -> dict[str, str]:
    """Return the .env that ``sh deploy/new-env.sh`` writes: what a first user runs."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ".env"
        subprocess.run(["sh", str(NEW_ENV), str(out)], check=True, capture_output=True,
                       timeout=30)
        return read_env_file(out)


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """Return a service's ``environment`` as a dict, whether written as a map or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, name: str) -> Dockerfile:
        path = REPO / name
        text = re.sub(r"\\\n", " ", path.read_text())
        instructions = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keyword, _, rest = line.partition(" ")
                instructions.append((keyword.upper(), rest.strip()))
        return cls(path, instructions)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"{self.path.name} has no {keyword}"
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        value = yaml.safe_load(self.last(keyword))
        assert isinstance(value, list), f"{self.path.name}: {keyword} is not in exec form"
        return [str(v) for v in value]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)
