"""docker-compose.yml starts with no password anyone knows: every credential is required
from .env (or a Docker secret), .env.example and deploy/new-env.sh make that .env, and the
app is not MinIO's root (tests/deploy/test_minio_init.py runs minio-init for real)."""

from __future__ import annotations

import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shared.config import load_settings
from tests.deploy.compose import (
    ENV_EXAMPLE,
    NEW_ENV,
    MissingVariable,
    all_references,
    environment_of,
    generated_env,
    load_compose,
    raw_compose,
    read_env_file,
    references,
)
from tests.deploy.secrets_lint import CREDENTIAL, NOT_SECRET, findings
from tests.services import REPO

OUR_IMAGES = {"Dockerfile.api", "Dockerfile.worker"}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return generated_env()


# --- no default, no literal -------------------------------------------------------------


def test_no_credential_has_a_default_or_a_literal_value() -> None:
    assert findings(raw_compose()) == []


@pytest.mark.parametrize("snippet", [
    # What the file held before: a default anyone can read in the repository.
    'environment: {POSTGRES_PASSWORD: "${METADATA_DB_PASSWORD:-backup-metadata}"}',
    'environment: {FLOWER_BASIC_AUTH: "${FLOWER_USER:-admin}:${FLOWER_PASSWORD:-change-me}"}',
    'environment: {DATABASE_URL: "postgresql://backup:${DB_PASSWORD:-x}@db:5432/app"}',
    # A literal, in either form compose accepts.
    'environment: {API_TOKEN: "abc123"}',
    'environment: ["MINIO_ROOT_PASSWORD=hunter22"]',
    'environment: {FLOWER_BASIC_AUTH: "admin:${FLOWER_PASSWORD:?set it}"}',
    'environment: {DATABASE_URL: "postgresql://backup:hunter22@db:5432/app"}',
    'environment: {NOTIFY_URL: "https://t0ken@hooks.example.com/x"}',
    'command: [redis-server, --requirepass, hunter22]',
    # A variable that may be empty: compose then starts with an empty password.
    'environment: {S3_SECRET_KEY: "${S3_SECRET_KEY}"}',
    'environment: {S3_SECRET_KEY: "${S3_SECRET_KEY?set it}"}',
    'environment: {S3_SECRET_KEY: "${S3_SECRET_KEY:?}"}',
    'environment: {S3_SECRET_KEY: "$S3_SECRET_KEY"}',
    'environment: {REDIS_URL: "redis://:${REDIS_PASSWORD}@redis:6379/0"}',
    'healthcheck: {test: [CMD, redis-cli, -a, "${REDIS_PASSWORD:-x}", ping]}',
    'environment: {DB_PASSWORD_FILE: /run/secrets/db}',  # a secret the service does not mount
])
def test_the_check_catches_each_way_of_shipping_a_known_password(snippet: str) -> None:
    assert findings({"services": {"app": yaml.safe_load(snippet)}}), snippet


@pytest.mark.parametrize("snippet", [
    'environment: {POSTGRES_PASSWORD: "${METADATA_DB_PASSWORD:?set METADATA_DB_PASSWORD}"}',
    'environment: {FLOWER_BASIC_AUTH: "${FLOWER_USER:?set it}:${FLOWER_PASSWORD:?set it}"}',
    'environment: {DATABASE_URL: "postgresql://backup:${DB_PASSWORD:?set it}@db:5432/app"}',
    '{environment: {DB_PASSWORD_FILE: /run/secrets/db}, secrets: [db]}',
    'environment: {S3_BUCKET: "${S3_BUCKET:-backups}", POSTGRES_USER: backup}',
])
def test_the_check_accepts_required_variables_and_secrets(snippet: str) -> None:
    assert findings({"services": {"app": yaml.safe_load(snippet)}}) == []


def test_only_settings_may_have_a_default() -> None:
    assert not any(CREDENTIAL.search(name) for name in NOT_SECRET)
    defaulted = {ref.name for ref in all_references(raw_compose())
                 if not ref.required}
    assert defaulted <= NOT_SECRET


def test_compose_stops_naming_what_to_set_when_a_credential_is_missing(
        env: dict[str, str]) -> None:
    required = sorted({ref.name for ref in all_references(raw_compose())
                       if ref.required})
    assert required
    for name in required:
        for value in (None, ""):  # unset, or set to nothing
            partial = {k: v for k, v in env.items() if k != name}
            if value is not None:
                partial[name] = value
            with pytest.raises(MissingVariable, match=rf"\b{name}\b.*set {name} in \.env"):
                load_compose(partial)


# --- .env.example and deploy/new-env.sh -------------------------------------------------


def _paragraphs(path: Path) -> Iterator[list[str]]:
    block: list[str] = []
    for line in [*path.read_text().splitlines(), ""]:
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []


def test_env_example_lists_every_variable_with_a_comment_and_no_secret() -> None:
    example = read_env_file(ENV_EXAMPLE)
    used = {ref.name for ref in all_references(raw_compose())}
    assert set(example) == used
    for block in _paragraphs(ENV_EXAMPLE):
        if any(not line.startswith("#") for line in block):
            assert block[0].startswith("#"), f".env.example: {block[0]!r} has no comment"
    secrets = {name for name in example if re.search(r"PASSWORD|SECRET|TOKEN|ADMIN_KEY", name)}
    assert secrets and all(example[name] == "" for name in secrets), \
        "a secret in .env.example would be the password of every copy"
    # Copied as it is, without filling it in, it cannot start anything.
    with pytest.raises(MissingVariable):
        load_compose(example)


def test_new_env_fills_every_secret_with_a_fresh_random_value(tmp_path: Path) -> None:
    example = read_env_file(ENV_EXAMPLE)
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    for out in (first, second):
        subprocess.run(["sh", str(NEW_ENV), str(out)], check=True, capture_output=True)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    a, b = read_env_file(first), read_env_file(second)
    assert set(a) == set(example)
    for name, value in example.items():
        if value:
            assert a[name] == value
        else:  # 256 bits, URL-safe, different each time
            assert re.fullmatch(r"[0-9a-f]{64}", a[name]) and a[name] != b[name], name
    # It never overwrites a .env: the volumes were initialised with its passwords.
    before = first.read_text()
    result = subprocess.run(["sh", str(NEW_ENV), str(first)], capture_output=True, text=True)
    assert result.returncode != 0 and "exists" in result.stderr
    assert first.read_text() == before


# --- S3: the app is not MinIO's root --------------------------------------------------------


def test_the_app_never_gets_minio_root_credentials() -> None:
    raw = raw_compose()["services"]

    def names(value: str) -> set[str]:
        return {ref.name for ref in references(value)}

    root = names(" ".join(environment_of(raw["minio"]).values()))
    assert root == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    for name, service in raw.items():
        if service.get("build", {}).get("dockerfile") in OUR_IMAGES:
            env = environment_of(service)
            assert not names(" ".join(env.values())) & root, name
            assert not {k for k in env if k.startswith("MINIO_")}, name
    for name in ("api", "worker", "beat", "migrate"):
        env = environment_of(raw[name])
        assert names(env["S3_ACCESS_KEY"]) == {"S3_ACCESS_KEY"}, name
        assert names(env["S3_SECRET_KEY"]) == {"S3_SECRET_KEY"}, name
    init = environment_of(raw["minio-init"])
    assert names(init["S3_ACCESS_KEY"]) == {"S3_ACCESS_KEY"}
    assert names(init["MINIO_ROOT_USER"]) == {"MINIO_ROOT_USER"}


def test_the_api_admin_key_comes_from_env_in_every_role(env: dict[str, str]) -> None:
    compose = load_compose(env)
    for name in ("api", "worker", "beat", "migrate"):  # all of them sync auth.keys at start
        settings = load_settings(str(REPO / "deploy" / "config.compose.yaml"),
                                 env=environment_of(compose["services"][name]))
        assert not settings.auth.disabled
        assert [(k.name, k.scopes, k.key) for k in settings.auth.keys] == [
            ("admin", ("admin",), env["BACKUP_API_ADMIN_KEY"])], name
