"""The shipped alert rules: valid for Prometheus, and firing when they should (promtool)."""

from __future__ import annotations

import subprocess

import yaml

from tests.observability.peers import ALERTS, prometheus_binary


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([prometheus_binary("promtool"), *args], capture_output=True,
                          text=True, cwd=ALERTS.parent, timeout=120)


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_of_the_issue_is_shipped_and_unit_tested() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"BackupFailed", "BackupOverdue", "PackageFailed", "NoWorkerConsuming",
            "BackupsWaitingWithoutWorker", "BackupNotVerified"} <= names
    tests = yaml.safe_load((ALERTS.parent / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"]}
    assert tested == names
