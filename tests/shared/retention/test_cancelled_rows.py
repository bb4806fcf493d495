"""Cancelled backups and packages age out like failed ones and never count as kept backups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.retention.policy import Candidate, Policy, decide, packages_to_delete

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_cancelled_backup_goes_once_older_than_retention_days() -> None:
    backups = [Candidate("ok", "completed", NOW - timedelta(days=1)),
               Candidate("stopped-old", "cancelled", NOW - timedelta(days=20)),
               Candidate("stopped-new", "cancelled", NOW - timedelta(days=2))]
    verdicts = decide(backups, Policy(retention_days=14, max_backups=1), NOW)
    assert [(v.id, v.reason) for v in verdicts] == [
        ("stopped-old", "cancelled backup older than retention_days=14 (20.0 days old)")]


@dataclass
class _Package:
    id: str
    status: str
    created_at: datetime


def test_a_cancelled_package_goes_once_older_than_retention_days() -> None:
    packages = [_Package("ok", "completed", NOW - timedelta(days=1)),
                _Package("stopped", "cancelled", NOW - timedelta(days=90))]
    expired = packages_to_delete(packages, NOW, retention_days=60, max_packages=5)
    assert [e.package_id for e in expired] == ["stopped"]
