"""Delivering notices to real receivers: a local HTTP server and a local SMTP server.

In-process, with a real metadata DB (the counters a scrape reads). The only thing
not real is the pause between tries: ``deliver`` takes the sleep function, and these
tests record the pauses instead of waiting them out (the end-to-end tests wait).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.config.notifications import NotificationChannel, WebhookChannel
from shared.context import Context
from shared.logs import add_secret
from shared.metrics.counters import read
from shared.metrics.record import NOTIFICATIONS_TOTAL
from shared.models import Backup
from shared.notify import backup_notice, counts, drain, notify
from shared.notify.dispatch import BACKOFF, TRIES, deliver
from tests.contexts import make_context
from tests.receivers import HttpReceiver, SmtpReceiver
from tests.services import closed_port

HOOK_SECRET = "hook-Secret-5b0f1e2d9c"
SMTP_PASSWORD = "smtp-Pass-77aa31"


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def chat() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(login=("backup", SMTP_PASSWORD)) as receiver:
        yield receiver


def config(hook: HttpReceiver, chat: HttpReceiver, smtp: SmtpReceiver, *,
           smtp_password: str = SMTP_PASSWORD) -> str:
    return f"""
notifications:
  - type: webhook
    name: hook
    url: {hook.url}
    secret: {HOOK_SECRET}
    events: [backup_failed, backup_completed]
  - type: slack
    name: chat
    url: {chat.url}
    events: [backup_failed]
  - type: email
    name: mail
    host: 127.0.0.1
    port: {smtp.port}
    tls: none
    username: backup
    password: {smtp_password}
    from: Backup API <backup@example.com>
    to: [ops@example.com]
    events: [backup_failed]
"""


@pytest.fixture(params=["sqlite"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path, hook: HttpReceiver,
        chat: HttpReceiver, smtp: SmtpReceiver) -> Context:
    return make_context(request, tmp_path, config(hook, chat, smtp))


def failed_backup(error: str = "could not connect to 127.0.0.1:5 (connection refused)"
                  ) -> tuple[Backup, str]:
    backup = Backup(id=str(uuid.uuid4()), database_id="shop", engine="postgres",
                    status="failed", trigger="schedule", attempt=1, compression="gzip",
                    storage="local", started_at=datetime(2026, 11, 28, 2, 0, tzinfo=UTC))
    return backup, error


def channel(ctx: Context, name: str) -> NotificationChannel:
    return next(c for c in ctx.settings.notifications if c.name == name)


def counted(ctx: Context) -> dict[tuple[str, str], float]:
    with ctx.db.session() as session:
        return {(name, status): value for name, status, value
                in counts(session, ctx.settings.notifications)}


def test_one_failure_reaches_every_channel_that_lists_it(
        ctx: Context, hook: HttpReceiver, chat: HttpReceiver, smtp: SmtpReceiver) -> None:
    backup, error = failed_backup()
    notice = backup_notice("backup_failed", backup, error=error,
                           finished_at=datetime(2026, 11, 28, 2, 0, 3, tzinfo=UTC), duration=3.0)
    assert notify(ctx, notice) == 3
    assert drain(30)

    (request,) = hook.wait(1)
    body = request.json()
    assert body["event"] == "backup_failed" and body["database_id"] == "shop"
    assert body["backup_id"] == backup.id and body["error"] == error
    assert body["occurred_at"].endswith("Z") and body["finished_at"] == "2026-11-28T02:00:03Z"
    # The receiver checks the signature with the shared secret, over the raw body.
    expected = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Backup-Api-Signature"] == f"sha256={expected}"
    assert request.headers["X-Backup-Api-Event"] == "backup_failed"
    assert request.headers["X-Backup-Api-Delivery"] == body["delivery_id"]
    assert request.headers["Content-Type"] == "application/json"

    (message,) = chat.wait(1)
    slack = message.json()
    assert "Backup of shop failed: could not connect" in slack["text"]
    assert slack["blocks"][0]["text"]["text"] == slack["text"]
    assert "X-Backup-Api-Signature" not in message.headers  # a Slack channel has no secret

    ((envelope, mail),) = smtp.wait(1)
    assert smtp.logins == ["backup"]
    assert envelope.rcpt_tos == ["ops@example.com"]
    assert mail["Subject"].startswith("[backup-api] Backup of shop failed")
    assert f"backup_id: {backup.id}" in mail.get_payload()

    assert counted(ctx) == {(name, status): (1.0 if status == "sent" else 0.0)
                            for name in ("hook", "chat", "mail") for status in ("sent", "failed")}


def test_an_event_nobody_listens_to_goes_nowhere(ctx: Context, hook: HttpReceiver) -> None:
    backup, _ = failed_backup()
    assert notify(ctx, backup_notice("backup_completed", backup, size_bytes=10)) == 1
    assert drain(30)
    assert [r.json()["event"] for r in hook.wait(1)] == ["backup_completed"]
    assert counted(ctx)[("chat", "sent")] == 0


def test_a_receiver_answering_500_then_200_gets_the_same_delivery_again(
        ctx: Context, hook: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    hook.answers = [500]
    pauses: list[float] = []
    backup, error = failed_backup()
    notice = backup_notice("backup_failed", backup, error=error)
    with caplog.at_level(logging.WARNING):
        assert deliver(ctx, channel(ctx, "hook"), notice, sleep=pauses.append) == "sent"
    first, second = hook.wait(2)
    assert first.body == second.body and pauses == [BACKOFF[0]]
    assert "failed (try 1 of 3): the receiver answered HTTP 500" in caplog.text
    assert counted(ctx)[("hook", "sent")] == 1 and counted(ctx)[("hook", "failed")] == 0


def test_a_receiver_down_is_tried_three_times_then_counted_failed(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    down = WebhookChannel(
        type="webhook", name="down", events=("backup_failed",),
        url=f"http://127.0.0.1:{closed_port()}/hook", secret=HOOK_SECRET)
    pauses: list[float] = []
    backup, error = failed_backup()
    with caplog.at_level(logging.INFO):
        outcome = deliver(ctx, down, backup_notice("backup_failed", backup, error=error),
                          sleep=pauses.append)
    assert outcome == "failed" and pauses == list(BACKOFF) and len(pauses) == TRIES - 1
    assert "failed after 3 tries: could not reach the receiver: ConnectionRefusedError" \
        in caplog.text
    with ctx.db.session() as session:
        assert read(session, NOTIFICATIONS_TOTAL) == {
            '{"channel":"down","status":"failed"}': 1.0}


def test_a_refusal_that_will_not_change_is_not_retried(ctx: Context, hook: HttpReceiver,
                                                       smtp: SmtpReceiver, tmp_path: Path,
                                                       chat: HttpReceiver) -> None:
    hook.answers = [404]
    pauses: list[float] = []
    backup, error = failed_backup()
    notice = backup_notice("backup_failed", backup, error=error)
    assert deliver(ctx, channel(ctx, "hook"), notice, sleep=pauses.append) == "failed"
    assert len(hook.requests) == 1 and pauses == []
    # A wrong SMTP password: the server says no, and saying it again would not help.
    (tmp_path / "wrong").mkdir()
    wrong = make_context(_Param("sqlite"), tmp_path / "wrong",
                         config(hook, chat, smtp, smtp_password="not-the-password"))
    assert deliver(wrong, channel(wrong, "mail"), notice, sleep=pauses.append) == "failed"
    assert pauses == [] and smtp.messages == []


def test_no_secret_leaves_in_a_body_or_a_log(ctx: Context, hook: HttpReceiver,
                                             chat: HttpReceiver, smtp: SmtpReceiver,
                                             caplog: pytest.LogCaptureFixture) -> None:
    # As cli.py does at start: the config's passwords and keys are known secrets.
    s3_secret, db_password = "s3-Secret-Key-9f8e7d", "db-Password-4c3b2a"
    for secret in (s3_secret, db_password, HOOK_SECRET, SMTP_PASSWORD, hook.url):
        add_secret(secret)
    # An error that, through some bug, quotes all of them and a URL with credentials.
    error = (f"storage said {s3_secret}; pg said {db_password} at "
             f"postgresql://backup:{db_password}@db:5432/shop; mongodb://u:pw-X1@m/x; "
             f"smtp {SMTP_PASSWORD} hook {HOOK_SECRET}")
    backup, _ = failed_backup()
    with caplog.at_level(logging.INFO):
        notify(ctx, backup_notice("backup_failed", backup, error=error))
        assert drain(30)
    bodies = [r.body.decode() for r in hook.wait(1) + chat.wait(1)]
    bodies += [mail.as_string() for _, mail in smtp.wait(1)]
    for text in [*bodies, caplog.text]:
        for secret in (s3_secret, db_password, HOOK_SECRET, SMTP_PASSWORD, "pw-X1"):
            assert secret not in text
    assert "postgresql://backup:***@db:5432/shop" in bodies[0]


class _Param:
    """A stand-in for pytest's request, for a second context in one test."""

    def __init__(self, param: str) -> None:
        self.param = param


def test_an_error_of_several_lines_makes_a_one_line_subject(
        ctx: Context, smtp: SmtpReceiver) -> None:
    backup, _ = failed_backup()
    error = "pg_dump exited with code 1:\npg_dump: error: connection refused\r\nBcc: x@evil"
    notice = backup_notice("backup_failed", backup, error=error)
    assert deliver(ctx, channel(ctx, "mail"), notice, sleep=lambda _: None) == "sent"
    ((envelope, mail),) = smtp.wait(1)
    assert envelope.rcpt_tos == ["ops@example.com"] and mail["Bcc"] is None
    assert mail["Subject"].startswith("[backup-api] Backup of shop failed: pg_dump exited")
    assert "pg_dump: error: connection refused" in mail.get_payload()
