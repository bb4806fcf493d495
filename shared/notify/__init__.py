"""Notifications: tell people when a backup fails, stops, or cannot be read back.

``notices`` builds what is said (from committed rows), ``senders`` says it (webhook,
Slack, email; the ``SENDERS`` registry), ``dispatch`` sends it from threads after the
outcome is committed: retried, counted, never blocking nor failing the job. The
channels are the config's ``notifications`` (shared/config/notifications.py).
"""

from shared.notify.dispatch import counts, drain, notify, wants
from shared.notify.notices import (
    Notice,
    backup_notice,
    overdue_notice,
    package_notice,
    verify_notice,
)
from shared.notify.rows import announce_failed_backup

__all__ = ["Notice", "announce_failed_backup", "backup_notice", "counts", "drain", "notify",
           "overdue_notice", "package_notice", "verify_notice", "wants"]
