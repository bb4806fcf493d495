"""Logs of a full run: one JSON object per line, events with their fields, no secret."""

from __future__ import annotations

import json
from typing import Any

from tests.observability.conftest import ObsStack
from tests.services import PG_PASSWORD, PostgresCluster

WRONG_PASSWORD = "logs-Wrong-pw-8812"


def _lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"not a JSON log line: {line!r}") from exc
    return entries


def test_full_run_logs_json_events_without_secrets(obs: ObsStack, pg: PostgresCluster) -> None:
    api = obs.stack.client
    good = api.register_postgres(pg, "postgres")
    bad = api.register_postgres(pg, "postgres", password=WRONG_PASSWORD)
    ok = api.wait_backup(api.post("/backups", json={"database_id": good}).json()["id"])
    failed = api.wait_backup(api.post("/backups", json={"database_id": bad}).json()["id"])
    assert (ok["status"], failed["status"]) == ("completed", "failed")
    assert api.get("/metrics").status_code == 200

    text = obs.logs()
    # The metadata DB URL, the config-declared database and the API-registered one
    # all carry these passwords; none may reach a log.
    assert PG_PASSWORD not in text
    assert WRONG_PASSWORD not in text
    entries = _lines(text)

    def events(backup_id: str) -> dict[str, dict[str, Any]]:
        return {e["stage"]: e for e in entries if e.get("backup_id") == backup_id}

    done = events(ok["id"])
    assert {"start", "complete"} <= set(done)
    assert done["complete"]["database_id"] == good
    assert done["complete"]["duration_seconds"] == ok["duration_seconds"]
    assert done["complete"]["size_bytes"] == ok["size_bytes"]
    assert done["start"]["level"] == "info" and "time" in done["start"]

    bad_events = events(failed["id"])
    assert bad_events["fail"]["database_id"] == bad
    assert bad_events["fail"]["level"] == "warning"
    assert bad_events["fail"]["duration_seconds"] >= 0
    assert "password authentication failed" in bad_events["fail"]["error"]

    # The access log is JSON too, one line per request, with its fields.
    assert any(e["logger"] == "backup_api.access" and "POST /backups" in e["message"]
               and e["method"] == "POST" and e["path"] == "/backups" and e["status"] == 202
               for e in entries)
