"""Choosing the pg_dump that matches the server's major version."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.engines.pg_client import choose_client, installed_clients, major_of
from shared.errors import DumpError
from tests.services import PG_BIN

INSTALLED = {13: "/usr/lib/postgresql/13/bin", 15: "/usr/lib/postgresql/15/bin",
             17: "/usr/lib/postgresql/17/bin"}


@pytest.mark.parametrize(("server", "chosen"), [(15, 15), (14, 15), (13, 13), (9, 13),
                                                (16, 17), (17, 17)])
def test_smallest_client_at_least_as_new_as_the_server(server: int, chosen: int) -> None:
    client = choose_client(server, INSTALLED)
    assert client.major == chosen
    assert client.pg_dump == f"/usr/lib/postgresql/{chosen}/bin/pg_dump"
    assert client.pg_restore == f"/usr/lib/postgresql/{chosen}/bin/pg_restore"


def test_unknown_server_version_takes_the_newest_client() -> None:
    assert choose_client(None, INSTALLED).major == 17


def test_no_client_new_enough_names_both_versions() -> None:
    with pytest.raises(DumpError) as caught:
        choose_client(18, INSTALLED)
    message = caught.value.message
    assert "server is version 18" in message
    assert "newest installed pg_dump is version 17" in message
    assert "postgresql-client-18" in message


def test_no_client_at_all() -> None:
    with pytest.raises(DumpError, match="pg_dump not found"):
        choose_client(15, {})


@pytest.mark.parametrize(("num", "major"), [(150004, 15), (170000, 17), (90624, 9),
                                            (100023, 10)])
def test_major_of_server_version_num(num: int, major: int) -> None:
    assert major_of(num) == major


def test_debian_layout_is_scanned(tmp_path: Path) -> None:
    for version in ("9.6", "13", "16"):
        tool = tmp_path / version / "bin" / "pg_dump"
        tool.parent.mkdir(parents=True)
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    (tmp_path / "14" / "bin").mkdir(parents=True)  # a server-only leftover, no pg_dump
    found = installed_clients(debian_root=str(tmp_path))
    assert {9: str(tmp_path / "9.6" / "bin"), 13: str(tmp_path / "13" / "bin"),
            16: str(tmp_path / "16" / "bin")}.items() <= found.items()
    assert 14 not in found


def test_installed_client_is_found_and_pg_bin_dir_restricts_the_choice(tmp_path: Path) -> None:
    assert installed_clients()[15] == str(PG_BIN)
    assert installed_clients(str(PG_BIN)) == {15: str(PG_BIN)}
    with pytest.raises(DumpError, match=f"options.pg_bin_dir: no working pg_dump in {tmp_path}"):
        installed_clients(str(tmp_path))
