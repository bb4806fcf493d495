"""Long-term (GFS) retention end to end: real backups, backdated across years, a dry run that
says why each one stays or goes, then a run that deletes exactly those files and rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PG_PASSWORD, PostgresCluster
from tests.worker.beat.helpers import meta_sql

# Backdated creation times (UTC). The database counts periods in New York, where the
# first is still 31 December 2024: it is the newest backup of 2024 and of that December.
WHEN = {
    "nye": "2025-01-01 03:00+00",
    "jun_late": "2024-06-25 12:00+00",
    "jun_early": "2024-06-10 12:00+00",
    "mar": "2024-03-05 12:00+00",
    "y2023": "2023-12-31 22:00+00",
    "y2022": "2022-07-01 12:00+00",
    "jun_failed": "2024-06-30 12:00+00",
}
KEPT = {
    "nye": "kept: monthly 2024-12, yearly 2024",
    "jun_late": "kept: monthly 2024-06",
    "y2023": "kept: yearly 2023",
}
NOT_KEPT = "; not kept by any rule (keep_monthly=3, keep_yearly=3)"


def _files(stack: Stack, backup: dict[str, Any]) -> list[Path]:
    artifact = stack.storage_dir / backup["storage_key"]
    return [artifact, artifact.with_name(artifact.name + ".json")]


@pytest.fixture(scope="module")
def history(api: Client, stack: Stack, pg: PostgresCluster) -> tuple[str, dict[str, Any]]:
    """Seven real backups of one database (one failed) backdated over four years, and one now."""
    pg.create_database("gfs_src")
    pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g", "gfs_src")
    db_id = api.register_postgres(pg, "gfs_src", retention_days=7, max_backups=0,
                                  keep_monthly=3, keep_yearly=3, timezone="America/New_York")
    backups: dict[str, Any] = {}
    for name in ("nye", "jun_late", "jun_early", "mar", "y2023", "y2022"):
        backups[name] = api.wait_backup(
            api.post("/backups", json={"database_id": db_id}).json()["id"])
    api.patch(f"/databases/{db_id}", json={"password": "not-the-Password-1"})
    backups["jun_failed"] = api.wait_backup(
        api.post("/backups", json={"database_id": db_id}).json()["id"])
    api.patch(f"/databases/{db_id}", json={"password": PG_PASSWORD})
    backups["now"] = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert [b["status"] for b in backups.values()] == ["completed"] * 6 + ["failed", "completed"]
    for name, when in WHEN.items():
        meta_sql(pg, stack, f"UPDATE backups SET created_at = '{when}' "
                            f"WHERE id = '{backups[name]['id']}'")
    return db_id, backups


def test_keep_counts_are_settable_through_the_api(api: Client, history: tuple[str, Any]) -> None:
    db_id, _ = history
    shown = api.get(f"/databases/{db_id}").json()
    assert (shown["keep_daily"], shown["keep_weekly"], shown["keep_monthly"],
            shown["keep_yearly"]) == (0, 0, 3, 3)
    refused = api.patch(f"/databases/{db_id}", json={"keep_weekly": -1})
    assert refused.status_code == 422 and "keep_weekly" in refused.text
    assert "must be a whole number" in refused.text
    assert api.patch(f"/databases/{db_id}", json={"keep_weekly": 2.5}).status_code == 422
    assert api.get(f"/databases/{db_id}").json()["keep_weekly"] == 0


def test_the_dry_run_says_why_each_backup_stays_or_goes_then_the_run_deletes_them(
        api: Client, stack: Stack, history: tuple[str, Any]) -> None:
    db_id, backups = history
    name_of = {b["id"]: name for name, b in backups.items()}

    dry = api.post("/retention/run", json={"dry_run": True, "database_id": db_id}).json()
    going = {name_of[b["backup_id"]]: b["reason"] for b in dry["backups"]}
    staying = {name_of[b["backup_id"]]: b["reason"] for b in dry["kept"]}
    assert set(going) == {"jun_early", "mar", "y2022", "jun_failed"}
    assert {k: v for k, v in staying.items() if k != "now"} == KEPT
    assert staying["now"].startswith("kept: min_backups=1 (number 1 of the newest), "
                                     "within retention_days=7, monthly ")
    assert going["mar"].startswith("older than retention_days=7 (")
    assert going["mar"].endswith(NOT_KEPT) and going["y2022"].endswith(NOT_KEPT)
    # A failure never counts as June's backup: it goes, and June keeps its newest good one.
    assert going["jun_failed"].startswith("failed backup older than retention_days=7")
    assert all(p.exists() for b in backups.values() if b["storage_key"]
               for p in _files(stack, b))

    applied = api.post("/retention/run", json={"dry_run": False, "database_id": db_id}).json()
    assert applied["errors"] == [] and "kept" not in applied
    assert {name_of[b["backup_id"]] for b in applied["backups"]} == set(going)
    for name, backup in backups.items():
        present = api.get(f"/backups/{backup['id']}").status_code == 200
        assert present == (name in staying), name
        if backup["storage_key"]:
            assert all(p.exists() == (name in staying) for p in _files(stack, backup)), name
    assert api.get(f"/backups/{backups['y2023']['id']}/download").status_code == 200

    # Nothing more to do: a second dry run keeps the rest for the same reasons.
    again = api.post("/retention/run", json={"database_id": db_id}).json()
    assert again["count"] == 0
    assert {name_of[b["backup_id"]]: b["reason"] for b in again["kept"]} == staying
