"""Requests generated from our own OpenAPI document never get a 5xx (schemathesis).

Runs against a stack of its own (fresh metadata DB, no worker), since the fuzzer
registers databases and requests backups with arbitrary valid-looking values. It sends
the stack's admin key, so every operation is reached; its ``ignored_auth`` check also
replays requests without the key and fails if any operation that declares the bearer
scheme answers them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import start_stack
from tests.services import TEST_API_KEY, PostgresCluster, Redis


def test_generated_requests_never_get_a_server_error(
    tmp_path: Path, pg: PostgresCluster, redis: Redis,
) -> None:
    stack = start_stack(tmp_path / "fuzz", pg, redis, workers=0)
    try:
        st = shutil.which("st") or shutil.which("schemathesis")
        argv = [st] if st else [sys.executable, "-m", "schemathesis.cli"]
        result = subprocess.run(
            [*argv, "run", stack.client.base + "/openapi.json", "--url", stack.client.base,
             "--header", f"Authorization: Bearer {TEST_API_KEY}",
             "--checks", "not_a_server_error,ignored_auth", "--max-examples", "20",
             "--seed", "1"],
            capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "passed" in result.stdout
        assert "Traceback" not in stack.api.log()
    finally:
        stack.api.stop()
