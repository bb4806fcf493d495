"""The pure parts of a verification: its verdict, the comparison of counts, scratch names."""

from __future__ import annotations

from typing import Any

import pytest

from shared.engines.scratch import scratch_name
from shared.errors import ArtifactNotFound, BackupError, DumpError
from worker.verification import VerifyFailed, _compare, verdict


def test_verdicts() -> None:
    assert verdict(None) == "ok"
    assert verdict(BackupError("corrupt: checksum mismatch: …")) == "corrupt"
    assert verdict(ArtifactNotFound("no such key")) == "corrupt"
    assert verdict(DumpError("cannot create the scratch database")) == "restore_failed"
    assert verdict(RuntimeError("internal")) == "restore_failed"
    assert verdict(VerifyFailed("x", "corrupt", {})) == "corrupt"


def test_matching_counts_pass_and_are_recorded() -> None:
    details: dict[str, Any] = {}
    _compare(details, {"public.a": 3, "public.b": 0}, {"public.a": 3, "public.b": 0})
    assert details == {"tables": {"public.a": {"source": 3, "restored": 3},
                                  "public.b": {"source": 0, "restored": 0}}}


def test_a_missing_table_or_a_different_count_fails_the_restore() -> None:
    details: dict[str, Any] = {}
    with pytest.raises(VerifyFailed) as failed:
        _compare(details, {"public.a": 3, "public.gone": 5, "public.c": 1},
                 {"public.a": 2, "public.c": 1, "public.new": 7})
    assert failed.value.status == "restore_failed"
    assert failed.value.message == (
        "restore_failed: the restored counts differ from the source's at backup time: "
        "public.a: 3 rows at backup time, 2 restored; public.gone: missing after the restore "
        "(5 rows at backup time)")
    # A table not counted at backup time is shown, not judged.
    assert details["tables"]["public.new"] == {"source": None, "restored": 7}
    assert len(details["errors"]) == 2


def test_without_source_counts_the_restored_counts_are_shown() -> None:
    details: dict[str, Any] = {}
    _compare(details, None, {"public.a": 3})
    assert details["tables"] == {"public.a": {"source": None, "restored": 3}}
    assert "no source counts were recorded" in details["note"]


def test_scratch_names_are_clear_and_valid_identifiers() -> None:
    name = scratch_name("0f3c9a2e-1111-2222-3333-444455556666")
    assert name == "backup_api_verify_0f3c9a2e"
    assert len(name) < 63
