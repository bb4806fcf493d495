"""Paging through GET /backups: every backup once, newest first, from either end.

Pages past the middle are read from the oldest end (api/services/backups.py); this
checks that a user paging through sees the same thing as one who reads everything.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PostgresCluster

ROWS = 57  # not a multiple of the page size: the last page is short


@pytest.fixture(scope="module")
def paged_db(stack: Stack, pg: PostgresCluster) -> tuple[str, list[dict[str, str]]]:
    """A database with ROWS backups, some created at the same instant (ties)."""
    db_id = f"pages-{uuid.uuid4().hex[:8]}"
    assert stack.client.post("/databases", json={
        "id": db_id, "engine": "postgres", "host": "db.internal",
        "database_name": "app"}).status_code == 201
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"id": str(uuid.uuid4()), "status": "failed" if n % 4 == 0 else "completed",
             "created_at": (start + timedelta(hours=n // 3)).isoformat()} for n in range(ROWS)]
    values = ", ".join(f"('{r['id']}', '{db_id}', 'postgres', '{r['status']}', 'manual', "
                       f"'{r['created_at']}', 'gzip', 'local')" for r in rows)
    pg.psql("INSERT INTO backups (id, database_id, engine, status, trigger, created_at, "
            f"compression, storage) VALUES {values}",
            stack.env["DATABASE_URL"].rsplit("/", 1)[1])
    return db_id, rows


def _newest_first(rows: list[dict[str, str]]) -> list[str]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]),
                                    reverse=True)]


def _page(api: Client, params: dict[str, Any]) -> tuple[list[str], int]:
    response = api.get("/backups", params=params)
    assert response.status_code == 200, response.text
    return [b["id"] for b in response.json()], json.loads(
        response.headers["X-Pagination"])["total"]


@pytest.mark.parametrize("status", [None, "completed", "failed"])
@pytest.mark.parametrize("page_size", [10, 7])
def test_pages_hold_every_backup_once_newest_first(
    api: Client, paged_db: tuple[str, list[dict[str, str]]], status: str | None,
    page_size: int,
) -> None:
    db_id, rows = paged_db
    expected = _newest_first([r for r in rows if status in (None, r["status"])])
    filters = {"database_id": db_id, **({"status": status} if status else {})}
    seen: list[str] = []
    for page in range(1, len(expected) // page_size + 2):
        ids, total = _page(api, {**filters, "page": page, "page_size": page_size})
        assert total == len(expected)
        assert ids == expected[(page - 1) * page_size:page * page_size], page
        seen += ids
    assert seen == expected
    assert _page(api, {**filters, "page": len(expected) // page_size + 2,
                       "page_size": page_size}) == ([], len(expected))
