"""Backups encrypted with age on local storage, as a user meets them through the API.

The stack encrypts every backup to a global recipient whose secret key it is never
given; one config database (``vault``) uses its own key and has its identity file, so
it can be verified and restored; one (``plain``) opts out with ``{type: none}``.
Downloads are opened with the real ``age`` command line and restored with pg_restore.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.age import CmdlineWatch, age_decrypt, make_key, open_download, watch_cmdlines
from tests.conftest import Client, Stack, start_stack
from tests.services import PostgresCluster, Redis
from tests.worker.test_backup_postgres_e2e import CONTENT_QUERY, SEED_SQL, _pg_restore

# About 30 MB of hex text (17 MB gzipped): the artifact crosses many age chunks of 64 KiB.
DOCS_SQL = """
CREATE TABLE docs (id int PRIMARY KEY, body text);
INSERT INTO docs SELECT g, (SELECT string_agg(md5(random()::text || g || i), '')
                            FROM generate_series(1, 16) i) FROM generate_series(1, 60000) g;
"""
DOCS_QUERY = "SELECT count(*), md5(string_agg(body, '' ORDER BY id)) FROM docs"
NO_IDENTITY = ("is encrypted with age; set encryption.identity_file in config.yaml to "
               "verify or restore it")

CONFIG = """
global:
  compression: gzip
  max_parallel_jobs: 2
  encryption:
    type: age
    recipients: ["@GLOBAL@"]
storage:
  type: local
databases:
  - id: vault
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: enc_vault
    package: true
    encryption:
      type: age
      recipients: ["@VAULT@"]
      identity_file: "@VAULT_FILE@"
  - id: plain
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: enc_plain
    package: true
    encryption: {type: none}
package-conf:
  compression: zip
"""


class Keys:
    def __init__(self, root: Path) -> None:
        self.global_ = make_key(root / "global-key.txt")
        self.vault = make_key(root / "vault-key.txt")
        self.owner = make_key(root / "owner-key.txt")

    @property
    def secrets(self) -> list[str]:
        return [self.global_.secret, self.vault.secret, self.owner.secret]


@pytest.fixture(scope="module")
def keys(workdir: Path) -> Keys:
    root = workdir / "age-keys"
    root.mkdir(exist_ok=True)
    return Keys(root)


@pytest.fixture(scope="module")
def watch(keys: Keys) -> Iterator[CmdlineWatch]:
    """Every process's command line, for the whole module, looked at for the secret keys."""
    with watch_cmdlines(keys.secrets) as seen:
        yield seen


@pytest.fixture(scope="module")
def bodies() -> list[str]:
    """Every JSON body the API answered in this module."""
    return []


@pytest.fixture(scope="module")
def enc_stack(workdir: Path, pg: PostgresCluster, redis: Redis, keys: Keys,
              watch: CmdlineWatch, bodies: list[str]) -> Iterator[Stack]:
    for name in ("enc_vault", "enc_plain"):
        pg.create_database(name)
        pg.psql(SEED_SQL, name)
    pg.psql(DOCS_SQL, "enc_vault")
    config = (CONFIG.replace("@GLOBAL@", keys.global_.recipient)
              .replace("@VAULT@", keys.vault.recipient)
              .replace("@VAULT_FILE@", str(keys.vault.path)))
    stack = start_stack(workdir / "enc-stack", pg, redis, config=config)

    def record(response: requests.Response, *_: Any, **__: Any) -> None:
        if response.headers.get("Content-Type", "").startswith("application/json"):
            bodies.append(response.text)

    stack.client.session.hooks["response"].append(record)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="module")
def api(enc_stack: Stack) -> Client:
    return enc_stack.client


@pytest.fixture(scope="module")
def vault_backup(api: Client) -> dict[str, Any]:
    backup = api.wait_backup(api.post("/backups", json={"database_id": "vault"}).json()["id"],
                             timeout=300)
    assert backup["status"] == "completed", backup["error"]
    return backup


def _download(api: Client, path: str, target: Path, md5: str) -> requests.Response:
    response = api.get(path, stream=True)
    assert response.status_code == 200, response.text
    digest = hashlib.md5()
    with target.open("wb") as handle:
        for chunk in response.iter_content(1024 * 1024):
            digest.update(chunk)
            handle.write(chunk)
    assert digest.hexdigest() == md5
    return response


@pytest.mark.requires_peer("age")
def test_encrypted_backup_opens_with_age_and_restores(
    api: Client, enc_stack: Stack, pg: PostgresCluster, keys: Keys, watch: CmdlineWatch,
    vault_backup: dict[str, Any], tmp_path: Path,
) -> None:
    backup = vault_backup
    assert backup["encryption"] == {"type": "age", "recipients": [keys.vault.recipient]}
    assert backup["storage_key"].endswith(".dump.gz.age")
    assert backup["size_bytes"] > 10 * 1024 * 1024
    stored = enc_stack.storage_dir / backup["storage_key"]
    assert stored.read_bytes()[:22] == b"age-encryption.org/v1\n"
    sidecar = json.loads(Path(f"{stored}.json").read_text())
    assert sidecar["encryption"] == backup["encryption"]
    assert sidecar["checksum_md5"] == backup["checksum_md5"]

    # The checksums are of the stored (encrypted) bytes: md5sum of the download matches.
    download = tmp_path / "vault.dump.gz.age"
    response = _download(api, f"/backups/{backup['id']}/download", download,
                         backup["checksum_md5"])
    assert response.headers["Content-Disposition"].endswith('.dump.gz.age"')
    # Only the database's own key opens it: it was not encrypted to the global one.
    refused = age_decrypt(download, keys.global_, tmp_path / "nope.gz")
    assert refused.returncode != 0 and "no identity matched" in refused.stderr.lower()

    dump = open_download(download, keys.vault, tmp_path / "vault.dump")
    _pg_restore(pg, dump, "enc_vault_copy")
    for query in (CONTENT_QUERY, DOCS_QUERY):
        assert pg.psql(query, "enc_vault_copy") == pg.psql(query, "enc_vault")
    assert "pg_dump" in watch.programs, "the watch never saw the encrypted backup's pg_dump"


def _wait_restore(api: Client, response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return api.wait_done(f"/restores/{response.json()['id']}", timeout=300)


def test_verify_and_restore_decrypt_with_the_identity_file(
    api: Client, pg: PostgresCluster, vault_backup: dict[str, Any], watch: CmdlineWatch,
) -> None:
    verified = _wait_restore(api, api.post(f"/backups/{vault_backup['id']}/verify"))
    assert verified["status"] == "completed", verified["error"]
    assert verified["details"]["checksum_sha256"] == vault_backup["checksum_sha256"]

    before = [pg.psql(query, "enc_vault") for query in (CONTENT_QUERY, DOCS_QUERY)]
    pg.psql("DELETE FROM docs WHERE id % 2 = 0; UPDATE customers SET name = 'lost'",
            "enc_vault")
    restored = _wait_restore(api, api.post(f"/backups/{vault_backup['id']}/restore",
                                           json={"confirm": "vault"}))
    assert restored["status"] == "completed", restored["error"]
    assert [pg.psql(query, "enc_vault") for query in (CONTENT_QUERY, DOCS_QUERY)] == before
    assert "pg_restore" in watch.programs


def test_a_damaged_encrypted_artifact_fails_verification(api: Client,
                                                        enc_stack: Stack) -> None:
    backup = api.wait_backup(api.post("/backups", json={"database_id": "vault"}).json()["id"],
                             timeout=300)
    assert backup["status"] == "completed", backup["error"]
    path = enc_stack.storage_dir / backup["storage_key"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = _wait_restore(api, api.post(f"/backups/{backup['id']}/verify"))
    assert result["status"] == "failed"
    assert result["error"].startswith("corrupt: checksum mismatch: "), result["error"]
    assert "; the age stream is damaged or truncated: " in result["error"]
    assert api.delete(f"/backups/{backup['id']}").status_code == 204


@pytest.mark.requires_peer("age")
def test_without_an_identity_file_verify_and_restore_say_so(
    api: Client, pg: PostgresCluster, keys: Keys, tmp_path: Path,
) -> None:
    # Registered through the API: encrypted to the global recipient (and to the owner's
    # key it adds); this stack has no identity file for either.
    db_id = api.register_postgres(pg, "enc_plain", encryption={
        "type": "age", "recipients": [keys.owner.recipient]})
    shown = api.get(f"/databases/{db_id}").json()["encryption"]
    assert shown == {"type": "age", "recipients": [keys.global_.recipient, keys.owner.recipient]}
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "completed", backup["error"]
    assert backup["encryption"] == shown

    for action, body in (("verify", None), ("restore", {"confirm": db_id})):
        result = _wait_restore(api, api.post(f"/backups/{backup['id']}/{action}", json=body))
        assert result["status"] == "failed"
        assert result["error"] == f"backup {backup['id']} {NO_IDENTITY}"

    # The owner's own key opens the download: the recipients added through the API count.
    download = tmp_path / "owned.dump.gz.age"
    _download(api, f"/backups/{backup['id']}/download", download, backup["checksum_md5"])
    dump = open_download(download, keys.owner, tmp_path / "owned.dump")
    _pg_restore(pg, dump, "enc_owned_copy")
    assert pg.psql(CONTENT_QUERY, "enc_owned_copy") == pg.psql(CONTENT_QUERY, "enc_plain")


def test_a_database_may_opt_out_in_the_config(api: Client, enc_stack: Stack) -> None:
    assert api.get("/databases/plain").json()["encryption"] == {"type": "none"}
    backup = api.wait_backup(api.post("/backups", json={"database_id": "plain"}).json()["id"])
    assert backup["status"] == "completed", backup["error"]
    assert backup["encryption"] is None and backup["storage_key"].endswith(".dump.gz")
    assert (enc_stack.storage_dir / backup["storage_key"]).read_bytes()[:2] == b"\x1f\x8b"


def test_the_api_refuses_keys_it_must_not_take(api: Client, pg: PostgresCluster,
                                               keys: Keys) -> None:
    def register(encryption: Any) -> requests.Response:
        return api.post("/databases", json={
            "id": "enc-refused", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
            "database_name": "enc_plain", "encryption": encryption})

    typo = keys.owner.recipient[:-1] + ("q" if keys.owner.recipient[-1] != "q" else "p")
    cases = [
        ({"type": "age", "recipients": ["ssh-ed25519 AAAA"]},
         "encryption.recipients.0: must be an age public key"),
        ({"type": "age", "recipients": [typo]}, "its checksum does not match"),
        ({"type": "age", "recipients": [keys.owner.secret]},
         "encryption.recipients.0: this is a secret key (an identity), not a recipient"),
        ({"type": "age", "recipients": []}, "encryption.recipients: type age needs"),
        ({"type": "age", "recipients": [keys.owner.recipient],
          "identity_file": str(keys.vault.path)},
         "encryption.identity_file: is config-only"),
        ({"type": "rot13"}, "encryption.type: Must be one of: age, none"),
        ({"type": "none"}, "encryption.type: none is config-only while global.encryption "
                           "is set"),
    ]
    for encryption, message in cases:
        response = register(encryption)
        assert response.status_code == 422, (encryption, response.text)
        assert message in response.json()["message"], response.json()["message"]
        assert keys.owner.secret not in response.text
    assert api.get("/databases/enc-refused").status_code == 404

    db_id = api.register_postgres(pg, "enc_plain")
    patched = api.patch(f"/databases/{db_id}", json={"encryption": {
        "type": "age", "recipients": [keys.owner.recipient],
        "identity_file": "/etc/shadow"}})
    assert patched.status_code == 422
    assert "encryption.identity_file: is config-only" in patched.json()["message"]


@pytest.mark.requires_peer("age")
def test_an_encrypted_package_keeps_encrypted_members_as_they_are(
    api: Client, pg: PostgresCluster, keys: Keys, vault_backup: dict[str, Any], tmp_path: Path,
) -> None:
    plain = api.wait_backup(api.post("/backups", json={"database_id": "plain"}).json()["id"])
    assert plain["status"] == "completed", plain["error"]
    created = api.post("/packages/create", json={"database_ids": ["vault", "plain"]})
    assert created.status_code == 202, created.text
    package = api.wait_done(f"/packages/{created.json()['id']}", timeout=300)
    assert package["status"] == "completed", package["error"]
    assert package["encryption"] == {"type": "age", "recipients": [keys.global_.recipient]}
    assert package["storage_key"].endswith(".zip.age")

    download = tmp_path / "package.zip.age"
    response = _download(api, f"/packages/{package['id']}/download", download,
                         package["checksum_md5"])
    assert response.headers["Content-Type"] == "application/octet-stream"
    opened = age_decrypt(download, keys.global_, tmp_path / "package.zip")
    assert opened.returncode == 0, opened.stderr

    with zipfile.ZipFile(tmp_path / "package.zip") as archive:
        manifest_text = archive.read("manifest.json").decode()
        assert not [secret for secret in keys.secrets if secret in manifest_text]
        manifest = json.loads(manifest_text)
        entries = {entry["database_id"]: entry for entry in manifest["entries"]}
        assert entries["vault"]["encryption"] == vault_backup["encryption"]
        assert entries["vault"]["file"].endswith(".dump.gz.age")
        assert entries["plain"]["encryption"] is None
        member = archive.read(entries["vault"]["file"])
    assert hashlib.md5(member).hexdigest() == vault_backup["checksum_md5"]
    (tmp_path / "member.age").write_bytes(member)
    dump = open_download(tmp_path / "member.age", keys.vault, tmp_path / "member.dump")
    _pg_restore(pg, dump, "enc_vault_from_package")
    assert (pg.psql(DOCS_QUERY, "enc_vault_from_package")
            == pg.psql(DOCS_QUERY, "enc_vault"))


def test_no_secret_key_in_logs_bodies_sidecars_or_command_lines(
    api: Client, enc_stack: Stack, keys: Keys, watch: CmdlineWatch, bodies: list[str],
    vault_backup: dict[str, Any],
) -> None:
    for listing in ("/backups", "/databases", "/packages", "/restores"):
        assert api.get(listing, params={"page_size": 100}).status_code == 200
    written = [path.read_text() for path in enc_stack.storage_dir.rglob("*.json")]
    assert written, "no sidecar or manifest was written"
    logs = enc_stack.logs()
    assert "completed" in logs and bodies
    for secret in keys.secrets:
        assert secret not in logs
        assert not [body for body in bodies if secret in body]
        assert not [text for text in written if secret in text]
    assert watch.leaks == []
    # The watch was live while the encrypted backups and the restore ran.
    assert {"pg_dump", "pg_restore"} <= watch.programs
