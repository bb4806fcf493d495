"""The retention decision: which backups of one database go, and why. Pure, no I/O.

Rules (per database, with global defaults):
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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


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
