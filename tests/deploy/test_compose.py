"""docker-compose.yml and the Dockerfiles agree with the code: commands, env, ports, hosts."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import flower.options  # noqa: F401 - defines Flower's options in tornado's registry
import pytest
import yaml
from tornado.options import options as flower_options

from cli import build_parser
from shared.config import load_settings, runtime_from_env
from tests.deploy.compose import Dockerfile, command_of, load_compose
from tests.services import REPO
from worker.supervisor import Policy

OUR_IMAGES = {"Dockerfile.api", "Dockerfile.worker"}
REQUIRED = {"api", "worker", "beat", "flower", "redis", "metadata-db", "sample-postgres",
            "sample-mongodb", "minio", "minio-init"}


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


# Built from our images but running a script of deploy/, not our CLI: checked on their own.
SCRIPTS = {"sample-mongodb-seed"}


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items()
            if s.get("build", {}).get("dockerfile") in OUR_IMAGES and name not in SCRIPTS}


def test_the_sample_mongodb_seed_runs_its_script_with_the_sample_password(
        compose: dict[str, Any]) -> None:
    seed = compose["services"]["sample-mongodb-seed"]
    mounts = dict(m.split(":")[1::-1] for m in seed["volumes"])
    script = mounts[command_of(seed)[0]]
    assert seed["entrypoint"] == ["python"] and (REPO / script).is_file()
    argv = command_of(seed)
    mongo = compose["services"]["sample-mongodb"]["environment"]
    assert argv[argv.index("--host") + 1] == "sample-mongodb"
    assert argv[argv.index("--username") + 1] == mongo["MONGO_INITDB_ROOT_USERNAME"]
    assert seed["environment"] == {"SAMPLE_MONGO_PASSWORD": mongo["MONGO_INITDB_ROOT_PASSWORD"]}
    assert seed["restart"] == "no"


def _dockerfile(service: dict[str, Any]) -> Dockerfile:
    return Dockerfile.read(service["build"]["dockerfile"])


def test_every_service_of_the_issue_is_there(compose: dict[str, Any]) -> None:
    assert REQUIRED <= set(compose["services"])


def test_every_command_exists_in_our_cli(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name, service in _ours(compose).items():
        entrypoint = service.get("entrypoint") or _dockerfile(service).exec_form("ENTRYPOINT")
        if entrypoint == ["celery"]:
            continue  # Flower: checked below against Celery's own CLI.
        assert entrypoint == ["backup-api"], name
        argv = command_of(service) or _dockerfile(service).exec_form("CMD")
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{name}: `backup-api {' '.join(argv)}` is not our CLI") from exc
    for image in OUR_IMAGES:
        parser.parse_args(Dockerfile.read(image).exec_form("CMD"))
    assert "backup-api = \"cli:main\"" in (REPO / "pyproject.toml").read_text()


def test_flower_runs_from_the_worker_image_with_celery_flower(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["build"]["dockerfile"] == "Dockerfile.worker"
    assert flower["entrypoint"] == ["celery"] and command_of(flower) == ["flower"]
    assert "pip install" in Dockerfile.read("Dockerfile.worker").last("RUN")
    assert "[flower]" in Dockerfile.read("Dockerfile.worker").last("RUN")
    result = subprocess.run([sys.executable, "-m", "celery", "flower", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_env_var_is_read_by_the_config(compose: dict[str, Any]) -> None:
    recorder = _Recorder()
    runtime_from_env(recorder)
    config = yaml.safe_load((REPO / "deploy" / "config.compose.yaml").read_text())
    strings = " ".join(_strings(config))
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", strings))
    defaulted = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-", strings))
    known = recorder.asked | referenced
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "BACKUP_API_CONFIG"} <= recorder.asked
    for name, service in _ours(compose).items():
        env = service.get("environment", {})
        if name == "flower":
            for var in env:
                assert var == "CELERY_BROKER_URL" or (
                    var.startswith("FLOWER_") and var[7:].lower() in flower_options), var
            continue
        unknown = set(env) - known
        assert not unknown, f"{name}: {sorted(unknown)} are read by nothing"
        # Every variable the config needs is set, so the service starts.
        assert referenced - defaulted <= set(env), name


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_the_mounted_config_loads_with_the_service_env(compose: dict[str, Any]) -> None:
    for name, service in _ours(compose).items():
        if name == "flower":
            continue
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])
                  if m.startswith("./")}
        env = {k: str(v) for k, v in service["environment"].items()}
        config_in_container = env.get("BACKUP_API_CONFIG") or "./config.yaml"
        assert config_in_container in mounts, f"{name}: {config_in_container} is not mounted"
        settings = load_settings(str(REPO / mounts[config_in_container]), env=env)
        hosts = {urlsplit(settings.runtime.database_url).hostname,
                 urlsplit(settings.runtime.broker_url).hostname,
                 *(db.host for db in settings.databases)}
        if settings.storage.s3 and settings.storage.s3.endpoint_url:
            hosts.add(urlsplit(settings.storage.s3.endpoint_url).hostname)
        assert hosts <= set(compose["services"]), f"{name}: {hosts - set(compose['services'])}"


def test_ports_match_between_compose_commands_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]

    def published(service: dict[str, Any]) -> set[int]:
        return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}

    api = services["api"]
    args = build_parser().parse_args(command_of(api))
    image = _dockerfile(api)
    assert published(api) == {args.port} == {int(p) for p in image.all("EXPOSE")}
    assert f"127.0.0.1:{args.port}/health" in image.last("HEALTHCHECK")
    flower = services["flower"]
    port = int(flower["environment"]["FLOWER_PORT"])
    assert published(flower) == {port}
    assert f"127.0.0.1:{port}/healthcheck" in " ".join(flower["healthcheck"]["test"])

    env = api["environment"]
    settings = load_settings(str(REPO / "deploy" / "config.compose.yaml"), env=env)
    assert urlsplit(settings.runtime.database_url).port == 5432  # postgres image default
    assert urlsplit(settings.runtime.broker_url).port == 6379  # redis image default
    assert settings.storage.s3 is not None and settings.storage.s3.endpoint_url
    minio_url = urlsplit(settings.storage.s3.endpoint_url)
    init_url = urlsplit(services["minio-init"]["environment"]["MINIO_URL"])
    assert (init_url.hostname, init_url.port) == (minio_url.hostname, minio_url.port)
    assert minio_url.port in published(services["minio"])
    for db in settings.databases:
        assert db.port == {"postgres": 5432, "mongodb": 27017}[db.engine], db.id


def test_sample_databases_match_their_servers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["worker"]["environment"]
    settings = load_settings(str(REPO / "deploy" / "config.compose.yaml"), env=env)
    by_id = {db.id: db for db in settings.databases}
    pg = services["sample-postgres"]["environment"]
    assert (by_id["sample-postgres"].username, by_id["sample-postgres"].password,
            by_id["sample-postgres"].database_name) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    mongo = services["sample-mongodb"]["environment"]
    assert (by_id["sample-mongodb"].username, by_id["sample-mongodb"].password) == (
        mongo["MONGO_INITDB_ROOT_USERNAME"], mongo["MONGO_INITDB_ROOT_PASSWORD"])
    meta = services["metadata-db"]["environment"]
    url = urlsplit(settings.runtime.database_url)
    assert (url.username, url.password, url.path.lstrip("/")) == (
        meta["POSTGRES_USER"], meta["POSTGRES_PASSWORD"], meta["POSTGRES_DB"])
    # The app's S3 user is the one minio-init creates for the bucket, not MinIO's root.
    s3 = settings.storage.s3
    init = services["minio-init"]["environment"]
    minio = services["minio"]["environment"]
    assert s3 is not None
    assert (s3.access_key, s3.secret_key, s3.bucket) == (
        init["S3_ACCESS_KEY"], init["S3_SECRET_KEY"], init["S3_BUCKET"])
    assert (init["MINIO_ROOT_USER"], init["MINIO_ROOT_PASSWORD"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    assert s3.access_key != minio["MINIO_ROOT_USER"]
    assert s3.secret_key != minio["MINIO_ROOT_PASSWORD"]


def test_workers_scale_and_roles_wait_for_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["worker"]
    # `--scale worker=N` needs no fixed container name and no published port.
    assert "container_name" not in worker and "ports" not in worker
    for name in ("api", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    assert command_of(services["migrate"]) == ["migrate"]
    assert services["minio-init"]["restart"] == "no"


def test_docker_waits_out_the_worker_grace_period(compose: dict[str, Any]) -> None:
    """Docker's SIGKILL must come after the worker's grace period and cold shutdown
    (worker/supervisor.py), or a deploy kills running backups outright."""
    worker = compose["services"]["worker"]
    args = build_parser().parse_args(command_of(worker))
    stop = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert stop is not None, "write stop_grace_period in seconds, e.g. 340s"
    assert int(stop.group(1)) >= args.grace_period + Policy().kill_after + 10


def test_the_standins_override_replaces_third_party_images_only(compose: dict[str, Any]) -> None:
    """deploy/compose.standins.yaml (the compose test, where no registry answers) may swap
    an image that is pulled, and nothing else: our services run as docker-compose.yml says."""
    override = yaml.safe_load((REPO / "deploy" / "compose.standins.yaml").read_text())
    assert set(override) == {"services"}
    for name, service in override["services"].items():
        assert set(service) == {"image"}, name
        assert "build" not in compose["services"][name] and compose["services"][name]["image"]
    pulled = {n for n, s in compose["services"].items() if "build" not in s}
    assert set(override["services"]) == pulled
