"""The retention decisions: which backups and packages go, and why. Pure, no I/O.

Backup rules (per database, with global defaults). A backup is kept if any rule keeps it:
- the recent window: a completed backup stays while it is younger than ``retention_days``
  (0: no age limit) and among the newest ``max_backups`` completed ones (0: no count
  limit); outside either limit it goes, unless another rule below keeps it;
- the floor: the newest ``min_backups`` completed backups always stay, so a run of
  failures cannot erase the last good backup;
- long-term (GFS, restic's ``forget --keep-*`` as the model): ``keep_daily`` keeps the
  newest completed backup of each of the last N days that have one, ``keep_weekly`` of
  each of the last N ISO weeks (Monday to Sunday) that have one, ``keep_monthly`` of
  months, ``keep_yearly`` of years (0: off). Periods are calendar periods of the
  database's time zone (``timezone``, default ``global.timezone``, UTC) by
  ``created_at``; a period without a completed backup is skipped, not counted, so a
  gap in the schedule never costs a long-term backup;
- failed backups never count toward any rule; they go once older than
  ``retention_days``;
- pending and running backups are never touched.

Ties in ``created_at`` are broken by id, so the decision is deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

# The long-term rules, shortest period first: (rule name in reasons, Policy field).
GFS_RULES = (("daily", "keep_daily"), ("weekly", "keep_weekly"),
             ("monthly", "keep_monthly"), ("yearly", "keep_yearly"))


@dataclass(frozen=True)
class Policy:
    retention_days: int
    max_backups: int
    min_backups: int = 1
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    # The IANA zone whose calendar days, weeks, months and years the keep_* rules count.
    timezone: str = "UTC"

    def long_term(self) -> list[tuple[str, int]]:
        """Return the GFS rules that are on, as ``(rule name, N)``."""
        return [(rule, getattr(self, attr)) for rule, attr in GFS_RULES if getattr(self, attr)]


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


@dataclass(frozen=True)
class Decision:
    """What retention does with one finished backup: ``keep`` it or not, and why."""

    id: str
    keep: bool
    reason: str


def decide(backups: Iterable[Candidate], policy: Policy, now: datetime) -> list[Verdict]:
    """Return the backups to delete under ``policy`` at ``now``, each with its reason."""
    return [Verdict(d.id, d.reason) for d in explain(backups, policy, now) if not d.keep]


def explain(backups: Iterable[Candidate], policy: Policy, now: datetime) -> list[Decision]:
    """Return a decision for every finished backup: kept (``"kept: monthly 2026-10"``) or not.

    Completed backups come newest first, then failed ones; pending and running
    backups get no decision (retention never touches them).
    """
    backups = list(backups)
    max_age = timedelta(days=policy.retention_days) if policy.retention_days > 0 else None
    decisions: list[Decision] = []

    completed = sorted((b for b in backups if b.status == "completed"),
                       key=lambda b: (b.created_at, b.id), reverse=True)
    long_term = _long_term(completed, policy)
    for rank, backup in enumerate(completed, start=1):
        reasons = []
        if policy.max_backups > 0 and rank > policy.max_backups:
            reasons.append(f"beyond max_backups={policy.max_backups} "
                           f"(number {rank} of the newest completed backups)")
        age = now - backup.created_at
        if max_age is not None and age > max_age:
            reasons.append(f"older than retention_days={policy.retention_days} "
                           f"({_days(age)} old)")
        kept = []
        if rank <= policy.min_backups:
            kept.append(f"min_backups={policy.min_backups} (number {rank} of the newest)")
        if not reasons:
            kept.append(_recent(policy))
        kept += long_term.get(backup.id, [])
        if kept:
            decisions.append(Decision(backup.id, True, "kept: " + ", ".join(kept)))
        else:
            decisions.append(Decision(backup.id, False, "; ".join(reasons) + _not_kept(policy)))

    for backup in backups:
        # A cancelled backup, like a failed one, is a row without an artifact: kept a while.
        if backup.status not in ("failed", "cancelled"):
            continue
        age = now - backup.created_at
        if max_age is not None and age > max_age:
            decisions.append(Decision(backup.id, False, f"{backup.status} backup older than "
                                      f"retention_days={policy.retention_days} "
                                      f"({_days(age)} old)"))
        else:
            decisions.append(Decision(backup.id, True, f"kept: {backup.status} backup " + (
                f"within retention_days={policy.retention_days}" if max_age is not None
                else "(retention_days=0: no age limit)")))
    return decisions


def _long_term(completed: Sequence[Candidate], policy: Policy) -> dict[str, list[str]]:
    """Return, per backup id, the GFS periods it is kept for (``["monthly 2026-10"]``).

    ``completed`` is newest first, so the first backup met in a period is its newest;
    periods then come in order, and each rule stops after its N-th period.
    """
    zone = ZoneInfo(policy.timezone)
    kept: dict[str, list[str]] = defaultdict(list)
    for rule, limit in policy.long_term():
        last: str | None = None
        periods = 0
        for backup in completed:
            period = period_of(rule, backup.created_at.astimezone(zone))
            if period == last:
                continue
            if periods == limit:
                break
            last, periods = period, periods + 1
            kept[backup.id].append(f"{rule} {period}")
    return kept


def period_of(rule: str, local: datetime) -> str:
    """Return the period ``local`` falls in: ``2026-11-27``, ``2026-W48``, ``2026-11``, ``2026``."""
    if rule == "daily":
        return f"{local:%Y-%m-%d}"
    if rule == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if rule == "monthly":
        return f"{local:%Y-%m}"
    return f"{local:%Y}"


def _recent(policy: Policy) -> str:
    limits = [f"{name}={value}" for name, value in (("retention_days", policy.retention_days),
                                                   ("max_backups", policy.max_backups)) if value]
    return f"within {' and '.join(limits)}" if limits else "no retention_days or max_backups limit"


def _not_kept(policy: Policy) -> str:
    rules = ", ".join(f"keep_{rule}={limit}" for rule, limit in policy.long_term())
    return f"; not kept by any rule ({rules})" if rules else ""


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
    finished = sorted((p for p in packages if p.status in ("completed", "failed", "cancelled")),
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
