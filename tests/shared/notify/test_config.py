"""The ``notifications`` section: what loads, and errors that name the key at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import parse_config, runtime_from_env
from shared.config.notifications import EmailChannel, SlackChannel, WebhookChannel
from shared.errors import ConfigError
from tests.services import backup_api_cli

RUNTIME = runtime_from_env({})
ENV = {"HOOK_SECRET": "hook-Secret-0123456789", "SMTP_PASSWORD": "smtp-Pass-1234"}


def load(text: str) -> tuple[WebhookChannel | SlackChannel | EmailChannel, ...]:
    return parse_config(text, RUNTIME, ENV).notifications


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.message


def test_three_kinds_of_channel_load_with_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-a-File-99\n")
    channels = load(f"""
notifications:
  - type: webhook
    url: https://hooks.example.com/backups
    secret: ${{HOOK_SECRET}}
    events: [backup_failed, backup_overdue, backup_failed]
  - type: slack
    name: team-chat
    url: https://hooks.slack.com/services/T0/B0/xyz
    events: [backup_failed]
  - type: email
    host: smtp.example.com
    username: backup@example.com
    password_file: {tmp_path / "pw"}
    from: Backup API <backup@example.com>
    to: [ops@example.com, dba@example.com]
    events: [verify_failed, package_failed]
  - type: email
    name: relay
    host: relay.internal
    tls: ssl
    from: backup@example.com
    to: [ops@example.com]
    events: [backup_completed]
""")
    webhook, slack, email, relay = channels
    assert isinstance(webhook, WebhookChannel)
    assert (webhook.name, webhook.events, webhook.secret) == (
        "webhook", ("backup_failed", "backup_overdue"), "hook-Secret-0123456789")
    assert isinstance(slack, SlackChannel) and slack.name == "team-chat"
    assert isinstance(email, EmailChannel)
    assert (email.port, email.tls, email.password, email.recipients) == (
        587, "starttls", "from-a-File-99", ("ops@example.com", "dba@example.com"))
    assert isinstance(relay, EmailChannel) and (relay.port, relay.username) == (465, None)
    # Secrets stay out of what a settings object prints.
    assert "hook-Secret" not in repr(channels) and "from-a-File" not in repr(channels)
    assert "hooks.slack.com" not in repr(channels)


def test_no_section_means_no_channel() -> None:
    assert load("global:\n  schedule: '0 3 * * *'\n") == ()


@pytest.mark.parametrize(("channel", "expected"), [
    ("{type: webhook, url: 'ftp://example.com/x', events: [backup_failed]}",
     "notifications[0].url: must be an http:// or https:// URL"),
    ("{type: webhook, url: 'not a url', events: [backup_failed]}",
     "notifications[0].url: must be an http:// or https:// URL"),
    ("{type: slack, url: 'https://hooks.example.com/x', events: [backup_exploded]}",
     "notifications[0].events[0]: Must be one of: backup_failed, backup_overdue, "
     "verify_failed, package_failed, backup_completed."),
    ("{type: slack, url: 'https://hooks.example.com/x', events: []}",
     "notifications[0].events: list at least one event"),
    ("{type: email, from: a@example.com, to: [b@example.com], events: [backup_failed]}",
     "notifications[0].host: Missing data for required field."),
    ("{type: email, host: smtp, from: nobody, to: [b@example.com], events: [backup_failed]}",
     "notifications[0].from: not a mail address (e.g. ops@example.com)"),
    ("{type: email, host: smtp, from: a@example.com, to: [], events: [backup_failed]}",
     "notifications[0].to: list at least one address"),
    ("{type: email, host: smtp, tls: maybe, from: a@example.com, to: [b@example.com], "
     "events: [backup_failed]}", "notifications[0].tls: Must be one of: starttls, ssl, none."),
    ("{type: email, host: smtp, username: u, from: a@example.com, to: [b@example.com], "
     "events: [backup_failed]}", "notifications[0].username: give both username and "
                                 "password, or neither"),
    ("{type: webhook, url: 'https://x.example.com', secret: short, events: [backup_failed]}",
     "notifications[0].secret: too short: use at least 16 random characters"),
    ("{type: pager, events: [backup_failed]}",
     "notifications[0].type: must be one of webhook, slack, email"),
    ("{type: webhook, url: 'https://x.example.com', events: [backup_failed], port: 1}",
     "notifications[0].port: Unknown field."),
])
def test_a_bad_channel_is_named_by_its_key(channel: str, expected: str) -> None:
    assert error(f"notifications:\n  - {channel}\n") == expected


def test_two_channels_of_one_type_need_names() -> None:
    text = """
notifications:
  - {type: webhook, url: 'https://a.example.com', events: [backup_failed]}
  - {type: webhook, url: 'https://b.example.com', events: [backup_failed]}
"""
    assert error(text) == ("notifications[1].name: two channels of one type: give each a "
                           "name ('webhook')")
    named = text.replace("url: 'https://b", "name: second, url: 'https://b")
    assert [c.name for c in load(named)] == ["webhook", "second"]


def test_errors_never_echo_a_secret_url() -> None:
    message = error("notifications:\n  - {type: slack, url: 'hooks.slack.com/services/"
                    "T0/B0/tok-Secret-42', events: [backup_failed]}\n")
    assert "tok-Secret-42" not in message


def test_check_config_lists_the_channels_without_their_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("""
notifications:
  - {type: slack, url: "https://hooks.slack.com/services/T0/B0/tok-Secret-42",
     events: [backup_failed, backup_overdue]}
  - {type: webhook, name: ops, url: "https://hooks.example.com/x",
     secret: "${HOOK_SECRET}", events: [verify_failed]}
""")
    result = backup_api_cli({**ENV, "BACKUP_API_DATA_DIR": str(tmp_path)}, "check-config",
                            str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["notifications"] == [
        {"name": "slack", "type": "slack", "events": ["backup_failed", "backup_overdue"]},
        {"name": "ops", "type": "webhook", "events": ["verify_failed"]}]
    for secret in ("tok-Secret-42", ENV["HOOK_SECRET"], "hooks.example.com"):
        assert secret not in result.stdout + result.stderr
