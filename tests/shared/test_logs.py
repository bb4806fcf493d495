"""JSON log lines: fields of the event, and secrets redacted whatever logged them."""

from __future__ import annotations

import json
import logging
import sys

from shared import logs


def _format(message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("worker.backup", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_line_carries_the_event_fields() -> None:
    entry = _format("backup %s completed", "b1",
                    **logs.event("complete", backup_id="b1", database_id="shop",
                                 duration_seconds=1.5))
    assert entry["message"] == "backup b1 completed"
    assert entry["level"] == "info" and entry["logger"] == "worker.backup"
    assert (entry["stage"], entry["backup_id"], entry["database_id"],
            entry["duration_seconds"]) == ("complete", "b1", "shop", 1.5)


def test_url_passwords_and_known_secrets_are_redacted() -> None:
    logs.add_secret("Registered-Secret-991")
    entry = _format("connecting to %s with %s",
                    "postgresql://backup:Url-Secret-17@db:5432/meta", "Registered-Secret-991",
                    error="auth failed for Registered-Secret-991")
    text = json.dumps(entry)
    assert "Url-Secret-17" not in text and "Registered-Secret-991" not in text
    assert "postgresql://backup:***@db:5432/meta" in entry["message"]  # type: ignore[operator]


def test_an_exception_stays_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None,
                                   sys.exc_info())
    entry = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
