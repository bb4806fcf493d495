"""The retention decisions: which backups and packages go, and why. Pure, no I/O.

Backup rules (per database, with global defaults):
- a completed backup goes when it is older than ``retention_days`` (0: never by age)
  or is beyond the newest ``max_backups`` completed ones (0: no limit);
- but the newest ``min_backups`` completed backups always stay, so a run of failures
  cannot erase the last good backup;
- failed backups do not count toward ``max_backups``; they go once older than
  ``retention_days``;
- pending and running backups are never touched.

Ties in ``created_at`` are broken by id, so the decision is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True)
class Policy:
    retention_days: int
    max_backups: int
    min_backups: int = 1


@dataclass(frozen=True)
class Candidate:
    """What the decision needs to know about one backup."""

    id: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Verdict:
    id: str
    reason: str


def decide(backups: Iterable[Candidate], policy: Policy, now: datetime) -> list[Verdict]:
    """Return the backups to delete under ``policy`` at ``now``, each with its reason."""
    backups = list(backups)
    max_age = timedelta(days=policy.retention_days) if policy.retention_days > 0 else None
    verdicts: list[Verdict] = []

    completed = sorted((b for b in backups if b.status == "completed"),
                       key=lambda b: (b.created_at, b.id), reverse=True)
    for rank, backup in enumerate(completed, start=1):
        if rank <= policy.min_backups:
            continue
        reasons = []
        if policy.max_backups > 0 and rank > policy.max_backups:
            reasons.append(f"beyond max_backups={policy.max_backups} "
                           f"(number {rank} of the newest completed backups)")
        age = now - backup.created_at
        if max_age is not None and age > max_age:
            reasons.append(f"older than retention_days={policy.retention_days} "
                           f"({_days(age)} old)")
        if reasons:
            verdicts.append(Verdict(backup.id, "; ".join(reasons)))

    if max_age is not None:
        for backup in backups:
            age = now - backup.created_at
            if backup.status == "failed" and age > max_age:
                verdicts.append(Verdict(backup.id, f"failed backup older than retention_days="
                                                   f"{policy.retention_days} ({_days(age)} old)"))
    return verdicts


def _days(age: timedelta) -> str:
    return f"{age.total_seconds() / 86400:.1f} days"


# --- packages ---------------------------------------------------------------------------


class PackageRow(Protocol):
    id: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Expired:
    package_id: str
    reason: str


def packages_to_delete(packages: Sequence[PackageRow], now: datetime, retention_days: int,
                       max_packages: int) -> list[Expired]:
    """Decide which packages retention removes, and why.

    Only finished packages are considered. Completed ones beyond the newest
    ``max_packages`` go, and finished ones created more than ``retention_days`` ago.
    A limit of 0 disables its rule. The newest completed package always stays, so
    a deployment whose schedule stopped still keeps its last good package.
    """
    finished = sorted((p for p in packages if p.status in ("completed", "failed")),
                      key=lambda p: (p.created_at, p.id), reverse=True)
    completed = [p for p in finished if p.status == "completed"]
    rank = {p.id: index for index, p in enumerate(completed)}
    keep = completed[0].id if completed else None
    cutoff = now - timedelta(days=retention_days)
    expired: list[Expired] = []
    for package in finished:
        if package.id == keep:
            continue
        if max_packages and rank.get(package.id, -1) >= max_packages:
            expired.append(Expired(package.id, f"beyond max_packages={max_packages}"))
        elif retention_days and package.created_at < cutoff:
            expired.append(Expired(package.id, f"older than retention_days={retention_days}"))
    return expired
