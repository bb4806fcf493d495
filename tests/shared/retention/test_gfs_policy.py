"""Long-term (GFS) retention over years of simulated backups: periods, gaps, failures, zones.

The expected sets come from an oracle written differently from the policy (group every
completed backup by period, take the newest of each of the newest N periods), so the
two must agree on thousands of backups, not on a hand-picked few.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.config import parse_config, runtime_from_env
from shared.errors import ConfigError
from shared.retention.policy import Candidate, Decision, Policy, decide, explain, period_of

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
START = date(2023, 6, 1)
GAP = (date(2026, 3, 10), date(2026, 3, 20))  # the server was off: no backups at all
HOURS = (2, 10, 18)  # three backups a day


def _simulate() -> list[Candidate]:
    """Three backups a day from June 2023 to now, a ten-day gap, every 7th one failed."""
    backups, number, day = [], 0, START
    while day <= NOW.date():
        if not GAP[0] <= day <= GAP[1]:
            for hour in HOURS:
                when = datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)
                if when <= NOW:
                    number += 1
                    status = "failed" if number % 7 == 0 else "completed"
                    backups.append(Candidate(f"b{number:05d}", status, when))
        day += timedelta(days=1)
    return backups


def _oracle(backups: Iterable[Candidate], rule: str, n: int, zone: str = "UTC") -> set[str]:
    newest: dict[str, Candidate] = {}
    groups: defaultdict[str, list[Candidate]] = defaultdict(list)
    for backup in backups:
        if backup.status == "completed":
            groups[period_of(rule, backup.created_at.astimezone(ZoneInfo(zone)))].append(backup)
    for period, members in groups.items():
        newest[period] = max(members, key=lambda b: (b.created_at, b.id))
    return {newest[p].id for p in sorted(newest, reverse=True)[:n]}


def _kept(decisions: list[Decision]) -> dict[str, str]:
    return {d.id: d.reason for d in decisions if d.keep}


def test_years_of_backups_keep_exactly_the_recent_window_and_each_rule() -> None:
    backups = _simulate()
    assert len(backups) > 3000
    policy = Policy(retention_days=7, max_backups=0, keep_daily=14, keep_weekly=8,
                    keep_monthly=12, keep_yearly=5)
    decisions = explain(backups, policy, NOW)
    assert {d.id for d in decisions} == {b.id for b in backups}  # one decision each

    recent = {b.id for b in backups
              if b.status == "completed" and NOW - b.created_at <= timedelta(days=7)}
    expected = (recent | _oracle(backups, "daily", 14) | _oracle(backups, "weekly", 8)
                | _oracle(backups, "monthly", 12) | _oracle(backups, "yearly", 5))
    failed_recent = {b.id for b in backups
                     if b.status == "failed" and NOW - b.created_at <= timedelta(days=7)}
    assert set(_kept(decisions)) == expected | failed_recent
    # 21 recent completed + 7 more days + ~6 more weeks + 10 more months + 3 more years.
    assert 40 < len(expected) < 60


def test_reasons_name_the_rule_and_the_period() -> None:
    backups = _simulate()
    by_id = {b.id: b for b in backups}
    policy = Policy(retention_days=30, max_backups=0, keep_monthly=12, keep_yearly=3)
    decisions = explain(backups, policy, NOW)
    kept = _kept(decisions)
    october = max((b for b in backups if b.status == "completed"
                   and (b.created_at.year, b.created_at.month) == (2026, 10)),
                  key=lambda b: b.created_at)
    # The last of October is also within 30 days, and that is said too.
    assert kept[october.id] == "kept: within retention_days=30, monthly 2026-10"
    september = _oracle(backups, "monthly", 3) - {october.id}
    sept_id = min(september)
    assert kept[sept_id] == "kept: monthly 2026-09"
    assert by_id[sept_id].created_at.date() == date(2026, 9, 30)
    (y2024,) = _oracle(backups, "yearly", 3) - _oracle(backups, "yearly", 2)
    assert kept[y2024] == "kept: yearly 2024"
    assert by_id[y2024].created_at == datetime(2024, 12, 31, 18, 0, tzinfo=UTC)
    # 2023 is the fourth year: beyond keep_yearly=3, so its last backup goes.
    last_2023 = max(b.id for b in backups if b.created_at.year == 2023 and b.status == "completed")
    deleted = {d.id: d.reason for d in decisions if not d.keep}
    assert deleted[last_2023].startswith("older than retention_days=30 (")
    assert deleted[last_2023].endswith(
        "; not kept by any rule (keep_monthly=12, keep_yearly=3)")
    assert [v.id for v in decide(backups, policy, NOW)] == [
        d.id for d in decisions if not d.keep]


def test_a_failed_last_backup_of_a_month_never_counts() -> None:
    end_of_june = datetime(2026, 6, 30, 18, 0, tzinfo=UTC)
    backups = [Candidate("good", "completed", end_of_june - timedelta(hours=8)),
               Candidate("failed", "failed", end_of_june),
               Candidate("now", "completed", NOW)]
    kept = _kept(explain(backups, Policy(14, 0, keep_monthly=6), NOW))
    assert kept == {"now": "kept: min_backups=1 (number 1 of the newest), "
                           "within retention_days=14, monthly 2026-11",
                    "good": "kept: monthly 2026-06"}
    assert decide(backups, Policy(14, 0, keep_monthly=6), NOW)[0].reason.startswith(
        "failed backup older than retention_days=14")


def test_a_gap_skips_periods_instead_of_using_them_up() -> None:
    # Daily backups stopped for weeks: keep_daily=3 still keeps three days, however old.
    days = [NOW - timedelta(days=d) for d in (40, 41, 42, 43)]
    backups = [Candidate(f"d{i}", "completed", when) for i, when in enumerate(days)]
    verdicts = decide(backups, Policy(7, 0, min_backups=0, keep_daily=3), NOW)
    assert {v.id for v in verdicts} == {"d3"}


def test_several_backups_a_day_keep_only_the_newest_of_each_day() -> None:
    day = datetime(2026, 11, 1, tzinfo=UTC)
    backups = [Candidate(f"h{h:02d}", "completed", day + timedelta(hours=h)) for h in range(24)]
    kept = _kept(explain(backups, Policy(7, 0, min_backups=0, keep_daily=1), NOW))
    assert kept == {"h23": "kept: daily 2026-11-01"}


def test_periods_are_those_of_the_database_time_zone() -> None:
    # 23:30 UTC on 31 October is 00:30 on 1 November in Berlin (CET, UTC+1).
    late = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    backups = [Candidate("late", "completed", late),
               Candidate("early", "completed", late - timedelta(hours=12))]
    utc = _kept(explain(backups, Policy(1, 0, min_backups=0, keep_monthly=2), NOW))
    berlin = _kept(explain(backups, Policy(1, 0, min_backups=0, keep_monthly=2,
                                           timezone="Europe/Berlin"), NOW))
    assert utc == {"late": "kept: monthly 2026-10"}
    assert berlin == {"late": "kept: monthly 2026-11", "early": "kept: monthly 2026-10"}


@pytest.mark.parametrize("when, period", [
    (datetime(2026, 12, 31, 12), "2026-W53"),
    (datetime(2027, 1, 1, 12), "2026-W53"),  # ISO weeks belong to the year of their Thursday
    (datetime(2027, 1, 4, 12), "2027-W01"),
    (datetime(2024, 12, 30, 12), "2025-W01"),
])
def test_weeks_are_iso_weeks(when: datetime, period: str) -> None:
    assert period_of("weekly", when) == period


def test_max_backups_min_backups_and_gfs_combine() -> None:
    backups = [Candidate(f"m{m:02d}", "completed", datetime(2026, m, 15, tzinfo=UTC))
               for m in range(1, 12)]
    # The newest 2 by count, plus the newest of each of the last 4 months.
    kept = _kept(explain(backups, Policy(0, 2, keep_monthly=4), NOW))
    assert set(kept) == {"m11", "m10", "m09", "m08"}
    assert kept["m09"] == "kept: monthly 2026-09"
    assert kept["m11"].startswith("kept: min_backups=1 (number 1 of the newest), "
                                  "within max_backups=2, monthly 2026-11")
    # The floor keeps what no other rule would.
    kept = _kept(explain(backups, Policy(1, 1, min_backups=3), NOW))
    assert set(kept) == {"m11", "m10", "m09"}
    # No limit at all keeps everything, and says so.
    kept = _kept(explain(backups, Policy(0, 0, min_backups=0), NOW))
    assert len(kept) == 11 and kept["m01"] == "kept: no retention_days or max_backups limit"


def test_without_keep_rules_the_reasons_are_unchanged() -> None:
    backups = [Candidate("a", "completed", NOW), Candidate("b", "completed", NOW - timedelta(30))]
    (verdict,) = decide(backups, Policy(14, 0), NOW)
    assert verdict.reason == "older than retention_days=14 (30.0 days old)"


@pytest.mark.parametrize("where, value, key", [
    ("global", "-1", "global.keep_daily"),
    ("global", "1.5", "global.keep_daily"),
    ("global", "'7'", "global.keep_daily"),
    ("global", "true", "global.keep_daily"),
    ("database", "-3", "databases[0].keep_daily"),
    ("database", "100001", "databases[0].keep_daily"),
])
def test_keep_values_are_whole_numbers_and_errors_name_the_key(where: str, value: str,
                                                               key: str) -> None:
    text = (f"global:\n  keep_daily: {value}\n" if where == "global" else
            "databases:\n  - {id: d, engine: postgres, database_name: d, "
            f"keep_daily: {value}}}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, runtime_from_env({}), {})
    assert f"{key}: must be a whole number from 0 to 100000" in str(caught.value)


def test_keep_values_load_globally_and_per_database() -> None:
    from shared.catalog import effective

    settings = parse_config(
        "global: {keep_daily: 7, keep_monthly: 12}\n"
        "databases:\n  - {id: d, engine: postgres, database_name: d, keep_monthly: 24,"
        " keep_yearly: 0}\n", runtime_from_env({}), {})
    eff = effective(settings.databases[0], settings.global_)
    assert (eff.keep_daily, eff.keep_weekly, eff.keep_monthly, eff.keep_yearly) == (7, 0, 24, 0)
