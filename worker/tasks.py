"""Celery tasks: thin wrappers that load by id and call one function."""

from __future__ import annotations

from celery import shared_task

from shared.context import current
from shared.jobs import BACKUP_TASK, PACKAGE_TASK, RESTORE_TASK, RETENTION_TASK
from shared.retention.apply import run_retention
from worker.backup import run_backup
from worker.package import run_package
from worker.restore import run_restore_job


@shared_task(name=BACKUP_TASK)
def backup(backup_id: str) -> None:
    """Take backup ``backup_id`` (idempotent: only a pending row is run)."""
    run_backup(current(), backup_id)


@shared_task(name=RESTORE_TASK)
def restore(restore_id: str) -> None:
    """Verify or restore per row ``restore_id`` (idempotent: only a pending row is run)."""
    run_restore_job(current(), restore_id)


@shared_task(name=PACKAGE_TASK)
def package(package_id: str) -> None:
    """Build package ``package_id`` (idempotent: only a pending row is run)."""
    run_package(current(), package_id)


@shared_task(name=RETENTION_TASK)
def retention(database_ids: list[str] | None = None) -> None:
    """Apply retention now (idempotent: a backup already deleted is skipped)."""
    run_retention(current(), database_ids)
