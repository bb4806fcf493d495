"""One sender per channel type, in ``SENDERS``: deliver a notice once, or raise why not.

A sender raises ``NotifyError``; ``permanent`` says that trying again cannot help (a
receiver answering 404, an SMTP server refusing the login), so the dispatcher stops
there instead of retrying. The messages name what went wrong, never the URL (a Slack
URL is its token) nor a credential.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from shared.config.notifications import (
    EmailChannel,
    NotificationChannel,
    SlackChannel,
    WebhookChannel,
)
from shared.notify.notices import Notice

SIGNATURE_HEADER = "X-Backup-Api-Signature"
EVENT_HEADER = "X-Backup-Api-Event"
DELIVERY_HEADER = "X-Backup-Api-Delivery"
USER_AGENT = "backup-api-notifier/1"
# HTTP answers worth another try: the receiver is overloaded, restarting or timed out.
_TRANSIENT_HTTP = {408, 425, 429}


class NotifyError(Exception):
    """A delivery failed; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def signature(secret: str, body: bytes) -> str:
    """Return the signature header's value: ``sha256=`` and the HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(channel: NotificationChannel, notice: Notice) -> None:
    """POST the notice's JSON payload, signed when the channel has a secret."""
    assert isinstance(channel, WebhookChannel)
    body = json.dumps(notice.payload(), ensure_ascii=False).encode()
    headers = {EVENT_HEADER: notice.event, DELIVERY_HEADER: notice.delivery_id}
    if channel.secret:
        headers[SIGNATURE_HEADER] = signature(channel.secret, body)
    _post_json(channel.url, body, headers, channel.timeout)


def send_slack(channel: NotificationChannel, notice: Notice) -> None:
    """POST a Slack message: ``text`` (the fallback every client shows) and one block."""
    assert isinstance(channel, SlackChannel)
    payload = notice.payload()
    details = "\n".join(f"*{key}*: {_slack_escape(str(value))}"
                        for key, value in payload.items()
                        if key not in ("summary", "delivery_id") and value is not None)
    text = f":rotating_light: {_slack_escape(payload['summary'])}"
    if notice.event == "backup_completed":
        text = f":white_check_mark: {_slack_escape(payload['summary'])}"
    message = {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "text": {"type": "mrkdwn", "text": details[:2900]}},
    ]}
    _post_json(channel.url, json.dumps(message, ensure_ascii=False).encode(), {},
               channel.timeout)


def send_email(channel: NotificationChannel, notice: Notice) -> None:
    """Send a plain-text email through the channel's SMTP server."""
    assert isinstance(channel, EmailChannel)
    payload = notice.payload()
    message = EmailMessage()
    # One line: an error may quote several lines of a tool's stderr.
    message["Subject"] = " ".join(f"[backup-api] {payload['summary']}".split())[:200]
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.recipients)
    message["Date"] = format_datetime(notice.occurred_at)
    message["Message-ID"] = make_msgid(domain=parseaddr(channel.sender)[1].split("@")[-1])
    message["X-Backup-Api-Event"] = notice.event
    lines = [payload["summary"], ""] + [f"{key}: {value}" for key, value in payload.items()
                                        if key != "summary" and value is not None]
    message.set_content("\n".join(lines) + "\n")
    try:
        with _smtp(channel) as smtp:
            if channel.username and channel.password:
                smtp.login(channel.username, channel.password)
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(f"the SMTP server refused the login ({exc.smtp_code})",
                          permanent=True) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotifyError(f"the SMTP server refused the recipients {sorted(exc.recipients)}",
                          permanent=True) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise NotifyError(f"the SMTP server does not support it: {exc}",
                          permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        raise NotifyError(f"the SMTP server answered {exc.smtp_code}",
                          permanent=500 <= exc.smtp_code < 600) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"SMTP {channel.host}:{channel.port}: {_reason(exc)}") from None


def _smtp(channel: EmailChannel) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if channel.tls == "ssl":
        return smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout,
                                context=context)
    smtp = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout)
    if channel.tls == "starttls":
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to report, not to follow (it would turn the POST into a GET)."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
        # A redirect or a 4xx answer will be the same next time; a 5xx may not.
        permanent = status < 500 and status not in _TRANSIENT_HTTP
        raise NotifyError(f"the receiver answered HTTP {status}", permanent=permanent) from None
    except (urllib.error.URLError, OSError) as exc:
        raise NotifyError(f"could not reach the receiver: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SENDERS: dict[str, Callable[[NotificationChannel, Notice], None]] = {
    "webhook": send_webhook, "slack": send_slack, "email": send_email,
}
