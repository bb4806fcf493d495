"""The package retention decision: by count, by age, and what it never removes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.retention.policy import packages_to_delete

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass
class Row:
    id: str
    status: str
    created_at: datetime


def _daily(count: int, status: str = "completed") -> list[Row]:
    """``count`` packages, p0 newest, one per day going back."""
    return [Row(f"p{i}", status, NOW - timedelta(days=i)) for i in range(count)]


def _decide(rows: list[Row], days: int, keep: int) -> dict[str, str]:
    return {e.package_id: e.reason for e in packages_to_delete(rows, NOW, days, keep)}


def test_count_keeps_the_newest_max_packages() -> None:
    assert _decide(_daily(7), days=0, keep=5) == {
        "p5": "beyond max_packages=5", "p6": "beyond max_packages=5"}


def test_age_removes_packages_older_than_retention_days() -> None:
    rows = _daily(3) + [Row("old", "completed", NOW - timedelta(days=61)),
                        Row("edge", "completed", NOW - timedelta(days=60))]
    assert _decide(rows, days=60, keep=0) == {"old": "older than retention_days=60"}


def test_both_rules_apply_and_order_does_not_matter() -> None:
    rows = list(reversed(_daily(10)))
    decided = _decide(rows, days=8, keep=3)
    assert set(decided) == {f"p{i}" for i in range(3, 10)}
    assert decided["p9"] == "beyond max_packages=3"


def test_zero_disables_a_rule() -> None:
    assert _decide(_daily(30), days=0, keep=0) == {}


def test_the_newest_completed_package_always_stays() -> None:
    rows = [Row("last-good", "completed", NOW - timedelta(days=400)),
            Row("recent-failure", "failed", NOW - timedelta(days=1))]
    assert _decide(rows, days=30, keep=1) == {}
    assert _decide(rows, days=30, keep=0) == {}


def test_running_and_pending_are_never_touched_and_failures_age_out() -> None:
    rows = [Row("new", "completed", NOW),
            Row("running", "running", NOW - timedelta(days=90)),
            Row("pending", "pending", NOW - timedelta(days=90)),
            Row("failed-old", "failed", NOW - timedelta(days=90)),
            Row("failed-new", "failed", NOW - timedelta(days=1))]
    assert _decide(rows, days=30, keep=1) == {"failed-old": "older than retention_days=30"}


def test_failed_packages_do_not_count_towards_max_packages() -> None:
    rows = _daily(2) + [Row(f"f{i}", "failed", NOW - timedelta(hours=i)) for i in range(5)]
    assert _decide(rows, days=0, keep=2) == {}
