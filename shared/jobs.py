"""Jobs from birth to failure: the rules the API, the beat and the workers share.

A job is a row (backup, package, restore) plus a Celery message carrying its id. The
row is committed first, then the message is sent by the task names below, so the API
and the beat never import the worker.
"""

from __future__ import annotations

# Celery task names: ``worker.tasks`` registers them, everyone else sends by name.
BACKUP_TASK = "backups.run"
PACKAGE_TASK = "packages.run"
RESTORE_TASK = "restores.run"
RETENTION_TASK = "retention.run"
