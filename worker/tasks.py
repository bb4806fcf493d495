"""Celery tasks: thin wrappers that load by id and call the pipeline."""

from __future__ import annotations

from celery import shared_task

from shared.context import current
from worker.pipeline import run_backup


@shared_task(name="backups.run")
def run(backup_id: str) -> None:
    """Take backup ``backup_id`` (idempotent: only a pending row is run)."""
    run_backup(current(), backup_id)
