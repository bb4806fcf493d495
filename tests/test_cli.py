"""The first hour with ``backup-api``: version, a port in use, check-config without a file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.services import REPO


def backup_api(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "BACKUP_API_DATA_DIR": str(cwd / "data")}
    for name in ("BACKUP_API_CONFIG", "DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    result = backup_api("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"backup-api {version('backup-api')}"


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = backup_api("run", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"backup-api: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(choose another with --port)"]
    # Nothing was started or created.
    assert not (tmp_path / "data").exists()


def test_check_config_without_a_file_says_so(tmp_path: Path) -> None:
    result = backup_api("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"] is None
    assert "no config file at ./config.yaml: showing the defaults" in result.stderr


def test_check_config_names_the_file_it_read(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("global:\n  compression: zstd\n")
    result = backup_api("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"] == "./config.yaml"
    assert "no config file" not in result.stderr
