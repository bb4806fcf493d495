"""The ``notifications`` section of ``config.yaml``: where failures are announced.

```yaml
notifications:
  - type: webhook                       # a JSON POST, signed when a secret is set
    name: ops-hook                      # optional: the metric's channel label (default: type)
    url: https://hooks.example.com/backups
    secret: ${WEBHOOK_SECRET}           # or secret_file; X-Backup-Api-Signature: sha256=…
    events: [backup_failed, backup_overdue, verify_failed, package_failed]
  - type: slack                         # a Slack-compatible incoming webhook
    url: ${SLACK_WEBHOOK_URL}
    events: [backup_failed, backup_overdue]
  - type: email
    host: smtp.example.com
    port: 587                           # default: 587 (starttls), 465 (ssl), 25 (none)
    tls: starttls                       # starttls | ssl | none
    username: backup@example.com
    password: ${SMTP_PASSWORD}          # or password_file
    from: backup@example.com
    to: [ops@example.com]
    events: [backup_failed, verify_failed]
```

Each channel receives only the events it lists. Every secret (the webhook's ``secret``,
the SMTP ``password``, and the URLs, which for Slack carry the token) stays in the
config: the sender never logs or sends it (see shared/notify).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

# What a channel may ask for; backup_completed is for those who want every outcome.
EVENTS = ("backup_failed", "backup_overdue", "verify_failed", "package_failed",
          "backup_completed")
CHANNEL_TYPES = ("webhook", "slack", "email")
TLS_MODES = ("starttls", "ssl", "none")
DEFAULT_SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z"


@dataclass(frozen=True)
class Channel:
    """What every channel has: its kind, its name (the metric's label), its events."""

    type: str
    name: str
    events: tuple[str, ...]
    timeout: float = 10.0


@dataclass(frozen=True)
class WebhookChannel(Channel):
    """A JSON POST to ``url``; signed with HMAC-SHA256 of the body when ``secret`` is set."""

    url: str = field(default="", repr=False)
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SlackChannel(Channel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat…): ``text``."""

    url: str = field(default="", repr=False)


@dataclass(frozen=True)
class EmailChannel(Channel):
    """A plain-text email through an SMTP server."""

    host: str = ""
    port: int = 587
    tls: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = ""
    recipients: tuple[str, ...] = ()


NotificationChannel = WebhookChannel | SlackChannel | EmailChannel


def channel_secrets(channels: tuple[NotificationChannel, ...]) -> list[str]:
    """Return the values no log line may show: secrets, passwords, and the URLs."""
    found: list[str | None] = []
    for channel in channels:
        if isinstance(channel, WebhookChannel):
            found += [channel.url, channel.secret]
        elif isinstance(channel, SlackChannel):
            found.append(channel.url)
        else:
            found.append(channel.password)
    return [value for value in found if value]


# --- schemas -----------------------------------------------------------------------------


def _read_file(path: str, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValidationError(f"cannot read {path!r}: {exc.strerror}", field_name=key) from exc


def _address(value: str) -> None:
    """Raise unless ``value`` is one mail address (``a@b.c`` or ``Name <a@b.c>``)."""
    _, address = parseaddr(value)
    if "@" not in address or address != address.strip() or " " in address:
        raise ValidationError("not a mail address (e.g. ops@example.com)")


_URL = validate.URL(schemes={"http", "https"}, require_tld=False,
                    error="must be an http:// or https:// URL")


class _ChannelSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True)
    name = fields.String(validate=validate.Regexp(
        NAME_PATTERN, error="must start with a letter or digit and contain only letters, "
                            "digits, '_', '.' or '-' (at most 63 characters)"))
    events = fields.List(fields.String(validate=validate.OneOf(EVENTS)), required=True,
                         validate=validate.Length(min=1, error="list at least one event"))
    timeout = fields.Float(validate=validate.Range(min=1, max=120))

    def common(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"type": data["type"], "name": data.get("name", data["type"]),
                "events": tuple(dict.fromkeys(data["events"])),
                "timeout": data.get("timeout", 10.0)}


class WebhookSchema(_ChannelSchema):
    url = fields.String(required=True, validate=_URL)
    secret = fields.String(validate=validate.Length(min=16, error="too short: use at least "
                                                    "16 random characters"))
    secret_file = fields.String()

    @validates_schema
    def one_secret(self, data: dict[str, Any], **_: Any) -> None:
        if "secret" in data and "secret_file" in data:
            raise ValidationError("give secret or secret_file, not both", field_name="secret")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> WebhookChannel:
        secret = data.get("secret")
        if "secret_file" in data:
            secret = _read_file(data["secret_file"], "secret_file")
        return WebhookChannel(**self.common(data), url=data["url"], secret=secret)


class SlackSchema(_ChannelSchema):
    url = fields.String(required=True, validate=_URL)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SlackChannel:
        return SlackChannel(**self.common(data), url=data["url"])


class EmailSchema(_ChannelSchema):
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(validate=validate.Range(min=1, max=65535))
    tls = fields.String(validate=validate.OneOf(TLS_MODES))
    username = fields.String()
    password = fields.String()
    password_file = fields.String()
    sender = fields.String(data_key="from", required=True, validate=_address)
    recipients = fields.List(fields.String(validate=_address), data_key="to", required=True,
                             validate=validate.Length(min=1, error="list at least one "
                                                                   "address"))

    @validates_schema
    def credentials(self, data: dict[str, Any], **_: Any) -> None:
        if "password" in data and "password_file" in data:
            raise ValidationError("give password or password_file, not both",
                                  field_name="password")
        has_password = "password" in data or "password_file" in data
        if has_password != ("username" in data):
            raise ValidationError("give both username and password, or neither",
                                  field_name="username")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> EmailChannel:
        password = data.get("password")
        if "password_file" in data:
            password = _read_file(data["password_file"], "password_file")
        tls = data.get("tls", "starttls")
        return EmailChannel(**self.common(data), host=data["host"], tls=tls,
                            port=data.get("port", DEFAULT_SMTP_PORTS[tls]),
                            username=data.get("username"), password=password,
                            sender=data["sender"], recipients=tuple(data["recipients"]))


_SCHEMAS: dict[str, type[_ChannelSchema]] = {
    "webhook": WebhookSchema, "slack": SlackSchema, "email": EmailSchema}


class ChannelField(fields.Field):  # type: ignore[type-arg]
    """One channel, read by the schema of its ``type``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> NotificationChannel:
        if not isinstance(value, dict):
            raise ValidationError("a channel is a mapping with a type and its events")
        kind = value.get("type")
        if kind not in _SCHEMAS:
            raise ValidationError({"type": [f"must be one of {', '.join(CHANNEL_TYPES)}"]})
        channel: NotificationChannel = _SCHEMAS[kind]().load(value)
        return channel


def validate_channels(channels: list[NotificationChannel]) -> None:
    """Raise unless every channel's name is unique (it labels the channel's metric)."""
    seen: set[str] = set()
    for index, channel in enumerate(channels):
        if channel.name in seen:
            hint = ("two channels of one type: give each a name" if channel.name ==
                    channel.type else "duplicate channel name")
            raise ValidationError({index: {"name": [f"{hint} ({channel.name!r})"]}})
        seen.add(channel.name)


def notifications_field() -> fields.List[NotificationChannel]:
    """Return the ``notifications`` list field of the config schema."""
    return fields.List(ChannelField(), validate=validate_channels)
