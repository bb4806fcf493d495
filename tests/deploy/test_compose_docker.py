"""docker-compose.yml for real: both images built from our Dockerfiles, the stack up, and a
user's session through the published ports (marker ``docker``: ``pytest -m docker``).

No container registry answers here, so ``deploy/compose.standins.yaml`` replaces the
third-party images (PostgreSQL, Redis, MinIO and its client, MongoDB) by stand-ins built
from Debian packages and the peers of scripts/peers.sh; our services, their commands,
environment, volumes, healthchecks and dependencies are docker-compose.yml's own. Our
images are built on a Debian python3 base with Debian's postgresql-client-15 (the
stand-in servers are PostgreSQL 15) and the mongodump scripts/peers.sh built, when it did.
The containers talk only on the network compose makes for the project; the published
ports bind 127.0.0.1 (free ones, through .env).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.deploy.docker_stack import (
    Engine,
    Project,
    new_project,
    note,
    settled,
    start_engine,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET_WORDS = ("PASSWORD", "SECRET", "ADMIN_KEY", "ACCESS_KEY")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = start_engine()
    yield engine
    engine.stop_if_started()


@pytest.fixture(scope="module")
def project(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = new_project(engine, tmp_path_factory.mktemp("compose"))
    t0 = time.monotonic()
    try:
        project.compose("up", "-d", "--no-build", timeout=600)
        project.wait(lambda: not list(settled(project)), 420,
                     "every service healthy, every one-shot exited 0")
        project.up_seconds = time.monotonic() - t0
        note(f"compose test ran: stack healthy {project.up_seconds:.0f}s after `up`; "
             f"images and bases ready in {engine.build_seconds:.0f}s")
        yield project
    finally:
        project.down()


class User:
    """What a person at the keyboard has: the published ports and the keys in .env."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.base = f"http://127.0.0.1:{project.ports['API_HOST_PORT']}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {project.env['BACKUP_API_ADMIN_KEY']}"

    def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = self.http.request(method, self.base + path, timeout=60, **kwargs)
        assert response.status_code == status, (method, path, response.status_code,
                                                response.text[:500])
        return response.json() if response.content and "json" in response.headers.get(
            "Content-Type", "") else response

    def register(self, database_id: str, database_name: str, **extra: Any) -> None:
        self.call("POST", "/databases", 201, json={
            "id": database_id, "name": database_id, "engine": "postgres",
            "host": "sample-postgres", "port": 5432, "username": "shop",
            "password": self.project.env["SAMPLE_PG_PASSWORD"],
            "database_name": database_name, **extra})

    def backup(self, database_id: str) -> str:
        return str(self.call("POST", "/backups", 202, json={"database_id": database_id})["id"])

    def finished(self, kind: str, job_id: str, seconds: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            row: dict[str, Any] = self.call("GET", f"/{kind}/{job_id}", 200)
            if row["status"] in ("completed", "failed", "cancelled"):
                return row
            time.sleep(1)
        raise AssertionError(f"{kind}/{job_id} still {row['status']}\n{self.project.logs()}")

    def download(self, path: str) -> bytes:
        return bytes(self.call("GET", path, 200).content)

    def flower(self, path: str, auth: bool = True) -> requests.Response:
        credentials = (self.project.env["FLOWER_USER"], self.project.env["FLOWER_PASSWORD"])
        return requests.get(f"http://127.0.0.1:{self.project.ports['FLOWER_HOST_PORT']}{path}",
                            auth=credentials if auth else None, timeout=30)


@pytest.fixture(scope="module")
def user(project: Project) -> User:
    return User(project)


def _shop_digest(project: Project, database: str) -> str:
    return project.psql("sample-postgres", database,
                        "SELECT (SELECT count(*) || ':' || md5(string_agg(id || name, ','"
                        " ORDER BY id)) FROM customers) || '/' || (SELECT count(*) || ':'"
                        " || sum(total) FROM orders)")


def test_images_are_small_non_root_and_carry_no_secret(engine: Engine, project: Project) -> None:
    sizes = {}
    for key in ("API_IMAGE", "WORKER_IMAGE"):
        image = engine.images[key]
        config = engine.docker("image", "inspect", "--format",
                               "{{json .Config.User}} {{json .Config.Env}}", image).stdout
        user_, _, env = config.partition(" ")
        assert user_.strip('"') == "10001:10001", image
        assert not any(word in env for word in SECRET_WORDS), env
        # The pip settings and CA were build secrets: mounted for one step, in no layer.
        probe = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image,
                              "-c", "id -u; ls /etc/pip.conf /run/secrets 2>&1 | wc -l; "
                              "test -w /var/lib/backup-api && echo writable", check=False)
        uid, _, rest = probe.stdout.partition("\n")
        assert uid == "10001" and "writable" in rest, probe.stdout + probe.stderr
        assert not engine.docker("run", "--rm", "--network", "none", "--entrypoint", "sh",
                                 image, "-c", "test -e /etc/pip.conf -o -e /run/secrets/pip-ca",
                                 check=False).returncode == 0
        sizes[image] = engine.docker("image", "ls", "--format", "{{.Size}}", image).stdout.strip()
    note(f"compose test ran: images {', '.join(f'{k} {v}' for k, v in sizes.items())}; "
         f"builds and bases {engine.build_seconds:.0f}s; stack healthy in "
         f"{project.up_seconds:.0f}s; worker mongodump: {engine.images['MONGO_TOOLS']}")
    print(f"\nimage sizes: {sizes}")


def test_a_users_first_session_back_up_download_restore_package(project: Project,
                                                                 user: User) -> None:
    # Auth is on: the stack's admin key comes from .env (auth.keys of config.compose.yaml).
    assert requests.get(user.base + "/databases", timeout=30).status_code == 401
    user.register("shop", "shop")
    backup_id = user.backup("shop")
    backup = user.finished("backups", backup_id)
    assert backup["status"] == "completed", backup
    assert backup["storage"] == "s3" and backup["size_bytes"] > 1000

    artifact = user.download(f"/backups/{backup_id}/download")
    assert hashlib.md5(artifact).hexdigest() == backup["checksum_md5"]
    assert len(artifact) == backup["size_bytes"]
    assert gzip.decompress(artifact)[:5] == b"PGDMP"  # pg_dump --format=custom, gzipped

    # Restore into another database, registered as a restore target, and compare.
    project.psql("sample-postgres", "shop", "CREATE DATABASE shop_copy")
    user.register("shop-copy", "shop_copy", restore_target=True)
    restore = user.call("POST", f"/backups/{backup_id}/restore", 202,
                        json={"target_database_id": "shop-copy"})
    restored = user.finished("restores", str(restore["id"]))
    assert restored["status"] == "completed", restored
    assert _shop_digest(project, "shop_copy") == _shop_digest(project, "shop")
    assert _shop_digest(project, "shop").startswith("1000:")

    package = user.call("POST", "/packages/create", 202, json={"database_ids": ["shop"]})
    packaged = user.finished("packages", str(package["id"]))
    assert packaged["status"] == "completed", packaged
    archive = user.download(f"/packages/{package['id']}/download")
    assert hashlib.md5(archive).hexdigest() == packaged["checksum_md5"]
    with zipfile.ZipFile(io.BytesIO(archive)) as members:  # package-conf: zip
        digests = {hashlib.md5(members.read(name)).hexdigest() for name in members.namelist()}
    assert backup["checksum_md5"] in digests, members.namelist()  # the backup, as stored

    # A Prometheus key, made as docs/deployment.md says: it reads /metrics and nothing else.
    key = project.compose("exec", "-T", "api", "backup-api", "keys", "create", "--name",
                          "prometheus", "--scope", "metrics").stdout.strip()
    scrape = {"Authorization": f"Bearer {key}"}
    assert requests.get(user.base + "/databases", headers=scrape, timeout=30).status_code == 403
    response = requests.get(user.base + "/metrics", headers=scrape, timeout=30)
    assert response.status_code == 200, response.text[:300]
    metrics = response.text
    assert 'backup_api_backups_total{database_id="shop",engine="postgres",status="completed"}' \
        in metrics
    assert "backup_api_packages_total" in metrics

    # Flower shows the backup task with its argument, only to who has its credentials.
    assert user.flower("/api/tasks", auth=False).status_code == 401
    tasks = user.flower("/api/tasks").json()
    ran = [t for t in tasks.values() if t["name"] == "backups.run" and backup_id in t["args"]]
    assert ran and ran[0]["state"] == "SUCCESS", tasks


def test_the_seeded_sample_mongodb_backs_up(project: Project, engine: Engine,
                                            user: User) -> None:
    if engine.images["MONGO_TOOLS"] == "none":
        why = engine.images["MONGO_TOOLS_WHY"]
        print(f"\nsample-mongodb backup not tried: the worker image has no mongodump ({why})")
        pytest.skip(f"the worker image has no mongodump: {why}")
    seeded = project.compose("logs", "--no-color", "sample-mongodb-seed").stdout
    assert "seeded shop with 1000 customers and 10000 orders" in seeded, seeded
    backup = user.finished("backups", user.backup("sample-mongodb"))  # from config.compose.yaml
    assert backup["status"] == "completed", backup
    artifact = user.download(f"/backups/{backup['id']}/download")
    assert hashlib.md5(artifact).hexdigest() == backup["checksum_md5"]
    dump = gzip.decompress(artifact)
    # mongodump --archive: the collections' headers, then their documents.
    assert b"customers" in dump and b"orders" in dump and b"customer 1000" in dump


class TableLock:
    """Hold ACCESS EXCLUSIVE on shop.orders in an open transaction: every pg_dump of shop
    waits for it, so its backup stays running (with heartbeats) until the lock goes."""

    def __init__(self, project: Project) -> None:
        self.process = subprocess.Popen(
            [*project.argv, "exec", "-T", "sample-postgres", "psql", "-X", "-U", "shop",
             "-d", "shop"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdin is not None
        self.process.stdin.write("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;\n")
        self.process.stdin.flush()
        project.wait(lambda: project.psql(
            "sample-postgres", "shop", "SELECT count(*) FROM pg_locks l JOIN pg_class c"
            " ON c.oid = l.relation WHERE c.relname = 'orders' AND l.mode ="
            " 'AccessExclusiveLock' AND l.granted") == "1", 60, "the lock on orders")

    def release(self) -> None:
        if self.process.poll() is None and self.process.stdin:
            self.process.stdin.write("ROLLBACK;\n")
            self.process.stdin.close()
            self.process.wait(60)


def _rows(project: Project, ids: list[str]) -> dict[str, tuple[str, str, int]]:
    """{backup id: (status, worker, attempt)} as the metadata DB has them (an operator's
    psql): the API does not show which worker holds a backup."""
    quoted = ",".join(f"'{i}'" for i in ids)
    out = project.psql("metadata-db", "backup_api",
                       f"SELECT id, status, coalesce(worker, ''), attempt FROM backups "
                       f"WHERE id IN ({quoted})", user="backup")
    rows = [line.split("|") for line in out.splitlines() if line]
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


def test_two_workers_share_backups_and_a_killed_workers_backup_is_retried(
        project: Project, user: User, engine: Engine) -> None:
    project.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "worker=2",
                    timeout=300)
    project.wait(lambda: len(user.flower("/api/workers?refresh=1").json()) >= 2, 240,
                 "two workers online in Flower")
    # Four databases (all on sample-postgres), two slots per worker (max_parallel_jobs: 2):
    # with their dumps held by the lock, the four backups can only run on both workers.
    ids = [f"shop-{n}" for n in range(4)]
    for database_id in ids:
        user.register(database_id, "shop")
    lock = TableLock(project)
    try:
        backups = [user.backup(database_id) for database_id in ids]
        project.wait(lambda: [s for s, _, _ in _rows(project, backups).values()]
                     == ["running"] * 4, 180, "four backups running at once")
        rows = _rows(project, backups)
        workers = {w for _, w, _ in rows.values()}
        assert len(workers) == 2, rows  # container hostnames: one per worker container

        # Kill one worker container mid-backup (SIGKILL: no grace period, no cleanup).
        victim = sorted(workers)[0]
        victims = [b for b, (_, w, _) in rows.items() if w == victim]
        engine.docker("kill", victim)
        killed_at = time.monotonic()
        # The beat's reaper sees its heartbeats stop (heartbeat_timeout) and sends those
        # backups again as attempt 2 (global.max_attempts: 2); the surviving worker runs
        # them once it has a free slot, so they are running again (or waiting) meanwhile.
        project.wait(lambda: all(r[2] == 2 and r[1] != victim
                                 for b, r in _rows(project, victims).items()),
                     420, "the killed worker's backups retried as attempt 2")
        print(f"\nkilled worker {victim} holding {victims}; retried as attempt 2 after "
              f"{time.monotonic() - killed_at:.0f}s: {_rows(project, backups)}")
    finally:
        lock.release()
    done = {b: user.finished("backups", b, 300) for b in backups}
    print(f"after the lock: {_rows(project, backups)}")
    assert all(row["status"] == "completed" for row in done.values()), done
    assert {b: done[b]["attempt"] for b in victims} == {b: 2 for b in victims}
    assert all(done[b]["attempt"] == 1 for b in backups if b not in victims)
    # The next backup of a database whose backup was interrupted simply succeeds.
    again = user.finished("backups", user.backup(ids[0]))
    assert again["status"] == "completed" and again["attempt"] == 1, again
