"""Notifications from a running stack to real receivers started by the test.

The API, a worker and (for ``backup_overdue``) a beat are real processes; the webhook
and Slack receivers are local ``http.server``s, the mail server a local ``aiosmtpd``.
What a user observes: the signed webhook body, the Slack text, the email, the retry
after a 500, a dead receiver changing nothing about the backup, and the counters in
``/metrics``, with no secret in any of it, nor in the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import STACK_CONFIG, Client, Stack, start_stack
from tests.receivers import HttpReceiver, Received, SmtpReceiver
from tests.services import PG_PASSWORD, TEST_API_KEY, PostgresCluster, Redis, closed_port
from tests.worker.beat.helpers import meta_sql, start_beat, wait_until

HOOK_SECRET = "hook-Secret-e2e-31c9a0b7"
SMTP_PASSWORD = "smtp-Pass-e2e-8d21"
UNREACHABLE_PASSWORD = "db-Unreachable-Secret-77"
SECRETS = (HOOK_SECRET, SMTP_PASSWORD, UNREACHABLE_PASSWORD, PG_PASSWORD, TEST_API_KEY)

NOTIFICATIONS = """
notifications:
  - type: webhook
    name: hook
    url: {hook}
    secret: ${{TEST_HOOK_SECRET}}
    events: [backup_failed, backup_overdue, verify_failed, package_failed]
  - type: slack
    name: chat
    url: {chat}
    events: [backup_failed, backup_completed]
  - type: email
    name: mail
    host: 127.0.0.1
    port: {smtp}
    tls: none
    username: backup-api
    password: ${{TEST_SMTP_PASSWORD}}
    from: Backup API <backup@example.com>
    to: [ops@example.com]
    events: [backup_failed]
  - type: webhook
    name: down
    url: http://127.0.0.1:{down}/hook
    events: [backup_failed]
"""


@dataclass
class Notified:
    stack: Stack
    hook: HttpReceiver
    chat: HttpReceiver
    smtp: SmtpReceiver

    @property
    def api(self) -> Client:
        return self.stack.client


@pytest.fixture(scope="module")
def notified(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Notified]:
    # The secrets reach the config through ${VAR}, as they would in production.
    saved = {name: os.environ.get(name) for name in ("TEST_HOOK_SECRET", "TEST_SMTP_PASSWORD")}
    os.environ.update(TEST_HOOK_SECRET=HOOK_SECRET, TEST_SMTP_PASSWORD=SMTP_PASSWORD)
    with HttpReceiver() as hook, HttpReceiver() as chat, \
            SmtpReceiver(login=("backup-api", SMTP_PASSWORD)) as smtp:
        config = STACK_CONFIG.replace("  max_parallel_jobs: 2\n",
                                      "  max_parallel_jobs: 2\n  beat_interval: 1\n")
        config += NOTIFICATIONS.format(hook=hook.url, chat=chat.url, smtp=smtp.port,
                                       down=closed_port())
        stack = start_stack(workdir / "notified", pg, redis, config)
        try:
            yield Notified(stack, hook, chat, smtp)
        finally:
            for process in [stack.api, *stack.workers]:
                process.stop()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def notifications(api: Client) -> dict[tuple[str, str], float]:
    """Return ``backup_api_notifications_total`` by (channel, status) from ``/metrics``."""
    text = api.get("/metrics").text
    return {(s.labels["channel"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "backup_api_notifications_total"}


def about(requests: list[Received], key: str, value: str) -> list[Received]:
    return [r for r in requests if r.json().get(key) == value]


def at_least(count: int, found: list[Received]) -> list[Received] | None:
    return found if len(found) >= count else None


def test_a_failed_backup_is_announced_on_every_channel_without_a_secret(
        notified: Notified, pg: PostgresCluster) -> None:
    api, hook, chat, smtp = notified.api, notified.hook, notified.chat, notified.smtp
    before = notifications(api)
    assert before[("down", "failed")] == 0 and before[("hook", "sent")] == 0
    hook.answers = [500]  # the first try meets a receiver in trouble; the second gets in
    db_id = api.register_postgres(pg, "postgres", port=closed_port(),
                                  password=UNREACHABLE_PASSWORD)
    response = api.post("/backups", json={"database_id": db_id})
    assert response.status_code == 202, response.text
    backup = api.wait_backup(response.json()["id"])
    # The backup fails as it always did: the notifiers change nothing about it.
    assert backup["status"] == "failed" and "could not connect" in backup["error"]

    first, second = wait_until(lambda: at_least(2, about(hook.requests, "backup_id",
                                                         backup["id"])), 60, "the retry")
    assert first.body == second.body  # the same delivery, tried again
    body = second.json()
    assert (body["event"], body["database_id"], body["error"]) == (
        "backup_failed", db_id, backup["error"])
    assert body["delivery_id"] == second.headers["X-Backup-Api-Delivery"]
    signed = hmac.new(HOOK_SECRET.encode(), second.body, hashlib.sha256).hexdigest()
    assert second.headers["X-Backup-Api-Signature"] == f"sha256={signed}"

    (message,) = wait_until(lambda: [r for r in chat.requests if backup["id"] in
                                     r.json()["blocks"][1]["text"]["text"]], 60, "Slack")
    assert f"Backup of {db_id} failed: {backup['error']}" in message.json()["text"]

    mails = wait_until(lambda: [m for _, m in smtp.messages
                                if backup["id"] in m.get_payload()] or None, 60, "the email")
    assert mails[0]["To"] == "ops@example.com" and "backup-api" in smtp.logins
    assert mails[0]["Subject"].startswith(f"[backup-api] Backup of {db_id} failed")

    # The dead receiver was tried three times (2 s and 10 s apart), then counted failed.
    after = wait_until(lambda: (c := notifications(api))[("down", "failed")] >= 1 and c, 60,
                       "the dead receiver's failure to be counted")
    assert after[("hook", "sent")] == before[("hook", "sent")] + 1
    assert after[("chat", "sent")] >= 1 and after[("mail", "sent")] >= 1
    assert after[("hook", "failed")] == 0
    logs = notified.stack.logs()
    assert "notification backup_failed to channel down failed after 3 tries" in logs
    assert "channel hook failed (try 1 of 3): the receiver answered HTTP 500" in logs

    received = [r.body.decode() for r in hook.requests + chat.requests]
    received += [m.as_string() for _, m in smtp.messages]
    for text in [*received, logs, api.get("/metrics").text]:
        for secret in SECRETS:
            assert secret not in text


def test_a_completed_backup_is_announced_where_it_is_asked_for(notified: Notified) -> None:
    api, chat = notified.api, notified.chat
    response = api.post("/backups", json={"database_id": "config-managed"})
    assert response.status_code == 202, response.text
    backup = api.wait_backup(response.json()["id"])
    assert backup["status"] == "completed"
    (message,) = wait_until(lambda: [r for r in chat.requests
                                     if backup["id"] in r.json()["blocks"][1]["text"]["text"]]
                            or None, 60, "the completed notice")
    assert "Backup of config-managed completed" in message.json()["text"]
    # The webhook lists only failures and lateness: it heard nothing of this one.
    assert not about(notified.hook.requests, "backup_id", backup["id"])


def test_a_database_whose_backups_stopped_is_announced_once(notified: Notified,
                                                            pg: PostgresCluster) -> None:
    api, hook, stack = notified.api, notified.hook, notified.stack
    db_id = api.register_postgres(pg, "postgres", port=closed_port(), schedule="0 3 * * *")
    # Registered three days ago, as time would have it: never a success since.
    meta_sql(pg, stack, f"UPDATE databases SET created_at = now() - interval '3 days' "
                        f"WHERE id = '{db_id}'")
    beat = start_beat(stack, "notify-beat")
    try:
        wait_until(lambda: about(about(hook.requests, "event", "backup_overdue"),
                                 "database_id", db_id), 60, "the overdue notice")
        time.sleep(5)  # five more passes (beat_interval: 1), to see that none says it again
    finally:
        beat.stop()
    (notice,) = about(about(hook.requests, "event", "backup_overdue"), "database_id", db_id)
    body = notice.json()
    assert body["last_success_at"] is None and body["schedule"] == "0 3 * * *"
    assert f"Backups of {db_id} are overdue" in body["summary"]
    assert "config-managed" not in [r.json()["database_id"] for r in hook.requests
                                    if r.json()["event"] == "backup_overdue"]


def test_a_failed_verification_and_a_failed_package_are_announced(
        notified: Notified, pg: PostgresCluster) -> None:
    api, hook, stack = notified.api, notified.hook, notified.stack
    backup = api.wait_backup(api.post("/backups", json={"database_id": "config-managed"})
                             .json()["id"])
    assert backup["status"] == "completed"
    path = stack.storage_dir / backup["storage_key"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bit flipped in storage
    path.write_bytes(bytes(data))
    requested = api.post(f"/backups/{backup['id']}/verify")
    assert requested.status_code == 202, requested.text
    verify = api.wait_done(f"/restores/{requested.json()['id']}")
    assert verify["status"] == "failed"
    (notice,) = wait_until(lambda: about(hook.requests, "restore_id", verify["id"]), 60,
                           "the verify_failed notice")
    body = notice.json()
    assert (body["event"], body["backup_id"], body["database_id"], body["error"]) == (
        "verify_failed", backup["id"], "config-managed", verify["error"])
    assert body["error"].startswith("corrupt: checksum mismatch")
    assert body["verify_status"] == "corrupt"

    # A package of a database without a completed backup has nothing to hold.
    empty = api.register_postgres(pg, "postgres", port=closed_port())
    package = api.post("/packages/create", json={"database_ids": [empty]})
    assert package.status_code == 202, package.text
    failed = api.wait_done(f"/packages/{package.json()['id']}")
    assert failed["status"] == "failed"
    (notice,) = wait_until(lambda: about(hook.requests, "package_id", failed["id"]), 60,
                           "the package_failed notice")
    assert (notice.json()["event"], notice.json()["error"]) == ("package_failed",
                                                                failed["error"])
