"""Celery tasks: thin wrappers that load by id and call the pipeline."""

from __future__ import annotations

from celery import shared_task

from shared.context import current
from worker import packaging
from worker.pipeline import run_backup
from worker.restoring import run_restore_job
from worker.retention import run_retention


@shared_task(name="backups.run")
def run(backup_id: str) -> None:
    """Take backup ``backup_id`` (idempotent: only a pending row is run)."""
    run_backup(current(), backup_id)


@shared_task(name="restores.run")
def restore(restore_id: str) -> None:
    """Verify or restore per row ``restore_id`` (idempotent: only a pending row is run)."""
    run_restore_job(current(), restore_id)


@shared_task(name="packages.run")
def run_package(package_id: str) -> None:
    """Build package ``package_id`` (idempotent: only a pending row is run)."""
    packaging.run_package(current(), package_id)


@shared_task(name="retention.run")
def retention(database_ids: list[str] | None = None) -> None:
    """Apply retention now (idempotent: a backup already deleted is skipped)."""
    run_retention(current(), database_ids)
