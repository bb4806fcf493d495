"""Scheduled proof of restorability through the real API, worker and two beats.

Every minute the beat verifies each database's latest completed backup with a test
restore: a scratch database is created, the backup is restored into it with
pg_restore, its rows are counted and compared with the source's counts at backup
time, and the scratch database is dropped. A realistic backup verifies ``ok``; one
damaged in the middle is ``corrupt``; one whose table cannot be created on the scratch
server (its tablespace exists only on the source's server) is ``restore_failed``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import Client, Stack
from tests.services import PostgresCluster
from tests.worker.beat.helpers import wait_until
from tests.worker.verify.conftest import TABLESPACE

TIMEOUT = 240


def _backup(api: Client, db_id: str) -> dict[str, Any]:
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202, created.text
    done = api.wait_backup(created.json()["id"], timeout=TIMEOUT)
    assert done["status"] == "completed", done["error"]
    return done


def _damage_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 512] = bytes(b ^ 0xFF for b in data[middle:middle + 512])
    path.write_bytes(bytes(data))


def _scheduled_verdict(api: Client, backup_id: str, status: str) -> dict[str, Any] | None:
    body = api.get(f"/backups/{backup_id}").json()
    if body["verify_status"] == status and body["verify_details"]["trigger"] == "schedule":
        return body
    return None


def _scratch_databases(*clusters: PostgresCluster) -> list[str]:
    return [name for cluster in clusters for name in cluster.psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'backup_api_verify_%'").split()]


def _source_counts(pg: PostgresCluster, database: str) -> dict[str, int]:
    rows = pg.psql("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                   "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN "
                   "('pg_catalog', 'information_schema')", database).split()
    return {name: int(pg.psql(f"SELECT count(*) FROM ONLY {name}", database)) for name in rows}


def _verifications(api: Client, backup_id: str) -> list[dict[str, Any]]:
    return api.get("/restores", params={"backup_id": backup_id, "page_size": 100}).json()


def _metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}{{{re.escape(wanted)}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_scheduled_test_restores_prove_or_disprove_each_backup(
        verify_stack: Stack, pg: PostgresCluster, scratch_pg: PostgresCluster,
        sources: dict[str, str]) -> None:
    api = verify_stack.client
    backups = {db_id: _backup(api, db_id) for db_id in ("shop", "damaged", "elsewhere")}
    assert backups["shop"]["size_bytes"] > 10_000_000  # tens of MB of tables, gzip'd
    _damage_middle(verify_stack.storage_dir / backups["damaged"]["storage_key"])

    expected = {"shop": "ok", "damaged": "corrupt", "elsewhere": "restore_failed"}
    verdicts = {db_id: wait_until(
        lambda db_id=db_id, status=status: _scheduled_verdict(api, backups[db_id]["id"], status),
        TIMEOUT, f"a scheduled {status} verification of {db_id}", every=1)
        for db_id, status in expected.items()}

    # Stop scheduling, let the verification under way end: then no scratch database is left.
    for beat in [p for p in verify_stack.workers if p.name.startswith("beat")]:
        beat.stop()
    wait_until(lambda: not [r for b in backups.values() for r in _verifications(api, b["id"])
                            if r["status"] in ("pending", "running")], TIMEOUT,
               "the last verifications to end")
    assert _scratch_databases(pg, scratch_pg) == []

    # ok: every table restored with the rows it had when the backup was taken.
    shop = api.get(f"/backups/{backups['shop']['id']}").json()
    details = shop["verify_details"]
    assert details["test_restore"] is True and details["scratch"]["dropped"] is True
    assert details["scratch"]["database"].startswith("backup_api_verify_")
    tables = details["tables"]
    assert {name: counts["source"] for name, counts in tables.items()} == \
        _source_counts(pg, sources["shop"])
    assert all(counts["restored"] == counts["source"] for counts in tables.values())
    assert tables["public.orders"] == {"source": 250000, "restored": 250000}
    assert tables["public.events_2024"]["restored"] + tables["public.events_2025"][
        "restored"] == 60000
    assert tables["audit.log"]["restored"] == 5000
    assert details["checksum_sha256"] == backups["shop"]["checksum_sha256"]
    assert "errors" not in details

    damaged = verdicts["damaged"]["verify_details"]
    assert damaged["scratch"]["dropped"] is True
    assert damaged["errors"][0].startswith("corrupt: checksum mismatch"), damaged["errors"]

    failed = verdicts["elsewhere"]["verify_details"]
    assert failed["scratch"]["dropped"] is True
    assert failed["scratch"]["server"] == f"127.0.0.1:{scratch_pg.port}"
    assert failed["errors"][0].startswith("restore_failed: pg_restore exited with code 1"), \
        failed["errors"]
    assert f'tablespace "{TABLESPACE}" does not exist' in failed["errors"][0].lower()
    # The job says the same, readably.
    last = next(r for r in _verifications(api, backups["elsewhere"]["id"])
                if r["status"] == "failed")
    assert f'tablespace "{TABLESPACE}" does not exist' in last["error"].lower()

    # Two beats, one verification per database and slot.
    logs = verify_stack.logs()
    for db_id, backup in backups.items():
        slots = Counter(r["details"]["scheduled_for"] for r in _verifications(api, backup["id"]))
        assert slots and max(slots.values()) == 1, slots
        for slot in slots:
            fired = f"verify:{db_id}: fired for slot {slot}"
            assert logs.count(fired) == 1, fired

    metrics = api.get("/metrics").text
    assert (_metric(metrics, "backup_api_verify_total", database_id="shop", status="ok")
            or 0) >= 1
    assert (_metric(metrics, "backup_api_verify_total", database_id="damaged",
                    status="corrupt") or 0) >= 1
    assert (_metric(metrics, "backup_api_verify_total", database_id="elsewhere",
                    status="restore_failed") or 0) >= 1
    assert _metric(metrics, "backup_api_verify_total", database_id="elsewhere",
                   status="ok") == 0
    verified_at = _metric(metrics, "backup_api_backup_last_verified_timestamp_seconds",
                          database_id="shop")
    assert verified_at is not None and abs(verified_at - time.time()) < TIMEOUT + 60
    assert _metric(metrics, "backup_api_backup_last_verified_timestamp_seconds",
                   database_id="elsewhere") is None


def test_a_manual_verify_may_ask_for_a_test_restore(verify_stack: Stack,
                                                    pg: PostgresCluster,
                                                    scratch_pg: PostgresCluster) -> None:
    api = verify_stack.client
    backup = api.get("/backups", params={"database_id": "damaged", "status": "completed"}
                     ).json()[0]
    invalid = api.post(f"/backups/{backup['id']}/verify", json={"test_restore": "maybe"})
    assert invalid.status_code == 422
    assert "test_restore" in invalid.json()["errors"]["json"]
    unknown = api.post(f"/backups/{backup['id']}/verify", json={"test_restore": True, "x": 1})
    assert unknown.status_code == 422

    elsewhere = api.get("/backups", params={"database_id": "elsewhere",
                                            "status": "completed"}).json()[0]
    plain = api.post(f"/backups/{elsewhere['id']}/verify")
    assert plain.status_code == 202, plain.text
    assert plain.json()["details"] == {"test_restore": False, "trigger": "manual"}
    done = api.wait_done(f"/restores/{plain.json()['id']}", TIMEOUT)
    # Without a test restore the archive reads fine: its bytes are sound.
    assert done["status"] == "completed", done["error"]
    row = api.get(f"/backups/{elsewhere['id']}").json()
    assert row["verify_status"] == "ok" and "tables" not in row["verify_details"]

    asked = api.post(f"/backups/{elsewhere['id']}/verify", json={"test_restore": True})
    assert asked.status_code == 202, asked.text
    done = api.wait_done(f"/restores/{asked.json()['id']}", TIMEOUT)
    assert done["status"] == "failed" and "does not exist" in done["error"]
    row = api.get(f"/backups/{elsewhere['id']}").json()
    assert row["verify_status"] == "restore_failed"
    assert row["verify_details"]["trigger"] == "manual"
    assert _scratch_databases(pg, scratch_pg) == []
    # The list carries the verdicts too.
    listed = {b["id"]: b for b in api.get("/backups", params={"database_id": "elsewhere"}
                                          ).json()}
    assert listed[elsewhere["id"]]["verify_status"] == "restore_failed"
