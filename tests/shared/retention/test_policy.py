"""The retention decision as a pure function: ages, counts, the floor, failures, ties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.retention.policy import Candidate, Policy, decide

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _b(id_: str, days_ago: float, status: str = "completed") -> Candidate:
    return Candidate(id_, status, NOW - timedelta(days=days_ago))


def _ids(verdicts: list) -> set[str]:
    return {v.id for v in verdicts}


def test_age_deletes_completed_older_than_retention_days() -> None:
    backups = [_b("new", 1), _b("edge", 14), _b("old", 14.01), _b("older", 30)]
    verdicts = decide(backups, Policy(retention_days=14, max_backups=0), NOW)
    assert _ids(verdicts) == {"old", "older"}
    assert all("older than retention_days=14" in v.reason for v in verdicts)


def test_count_keeps_the_newest_max_backups() -> None:
    backups = [_b(f"b{i}", i) for i in range(5)]
    verdicts = decide(backups, Policy(retention_days=0, max_backups=3), NOW)
    assert _ids(verdicts) == {"b3", "b4"}
    assert "beyond max_backups=3 (number 4" in next(v for v in verdicts if v.id == "b3").reason


def test_either_rule_deletes_and_both_reasons_are_given() -> None:
    backups = [_b("a", 1), _b("b", 2), _b("c", 20)]
    verdicts = decide(backups, Policy(retention_days=14, max_backups=2), NOW)
    assert _ids(verdicts) == {"c"}
    assert "max_backups" in verdicts[0].reason and "retention_days" in verdicts[0].reason


def test_floor_keeps_min_backups_even_when_all_are_too_old() -> None:
    backups = [_b("a", 40), _b("b", 50), _b("c", 60)]
    assert _ids(decide(backups, Policy(14, 10, min_backups=1), NOW)) == {"b", "c"}
    assert _ids(decide(backups, Policy(14, 10, min_backups=2), NOW)) == {"c"}
    assert decide(backups, Policy(14, 10, min_backups=5), NOW) == []


def test_floor_wins_over_max_backups() -> None:
    backups = [_b(f"b{i}", i) for i in range(4)]
    assert _ids(decide(backups, Policy(0, 1, min_backups=3), NOW)) == {"b3"}


def test_min_backups_zero_allows_deleting_everything() -> None:
    backups = [_b("a", 40), _b("b", 50)]
    assert _ids(decide(backups, Policy(14, 10, min_backups=0), NOW)) == {"a", "b"}


def test_failures_never_erase_the_last_good_backup() -> None:
    backups = [_b(f"f{i}", i, "failed") for i in range(20)] + [_b("good", 30)]
    verdicts = decide(backups, Policy(retention_days=14, max_backups=3), NOW)
    assert "good" not in _ids(verdicts)


def test_failed_backups_do_not_count_toward_max_backups() -> None:
    backups = [_b("f1", 0.1, "failed"), _b("f2", 0.2, "failed"), _b("a", 1), _b("b", 2)]
    assert decide(backups, Policy(retention_days=14, max_backups=2), NOW) == []


def test_failed_backups_go_after_retention_days_only() -> None:
    backups = [_b("f-new", 3, "failed"), _b("f-old", 15, "failed"), _b("a", 1)]
    verdicts = decide(backups, Policy(retention_days=14, max_backups=1), NOW)
    assert _ids(verdicts) == {"f-old"}
    assert verdicts[0].reason.startswith("failed backup older than retention_days=14")
    # retention_days 0 means never by age, for failures too.
    assert decide(backups, Policy(retention_days=0, max_backups=1), NOW) == []


def test_pending_and_running_are_never_touched() -> None:
    backups = [_b("p", 100, "pending"), _b("r", 100, "running"), _b("a", 1)]
    assert decide(backups, Policy(retention_days=1, max_backups=1, min_backups=0), NOW) == []


def test_ties_are_broken_by_id_deterministically() -> None:
    same = NOW - timedelta(days=1)
    backups = [Candidate(i, "completed", same) for i in ("c", "a", "b")]
    for order in (backups, backups[::-1]):
        assert _ids(decide(order, Policy(0, 2), NOW)) == {"a"}


def test_no_backups_no_verdicts() -> None:
    assert decide([], Policy(14, 10), NOW) == []
