"""The size bounds' rules and settings, without a database: the messages users read."""

from __future__ import annotations

import pytest

from shared.config import parse_config, runtime_from_env
from shared.errors import ConfigError
from worker.bounds import free_space_problem, max_size_of

GIB = 1024**3


def test_room_for_the_previous_backup_with_margin_and_the_floor_is_enough() -> None:
    assert free_space_problem(free=13 * GIB, previous_size=10 * GIB, min_free=GIB) is None
    assert free_space_problem(free=1, previous_size=None, min_free=0) is None


def test_too_little_room_names_both_numbers() -> None:
    problem = free_space_problem(free=11 * GIB, previous_size=10 * GIB, min_free=GIB)
    assert problem is not None
    assert problem.startswith("not enough free space on local storage: "
                              f"{11 * GIB} bytes (11.0 GiB) free, {13 * GIB} bytes (13.0 GiB) "
                              "needed")
    assert "the previous backup's 10.0 GiB x 1.2 = 12.0 GiB" in problem
    assert f"global.min_free_bytes {GIB} (1.0 GiB)" in problem


def test_a_first_backup_needs_only_the_floor() -> None:
    problem = free_space_problem(free=500, previous_size=None, min_free=1000)
    assert problem == ("not enough free space on local storage: 500 bytes (500 bytes) free, "
                       "1000 bytes (1000 bytes) needed: global.min_free_bytes 1000 "
                       "(1000 bytes); nothing was dumped")


CONFIG = """
global:
  min_free_bytes: 5000000000
databases:
  - id: big
    engine: postgres
    database_name: big
    max_size_bytes: 20000000
  - id: small
    engine: postgres
    database_name: small
"""


def test_the_bounds_load_from_config() -> None:
    settings = parse_config(CONFIG, runtime_from_env({}), {})
    assert settings.global_.min_free_bytes == 5_000_000_000
    assert max_size_of(settings, "big") == 20_000_000
    assert max_size_of(settings, "small") is None
    assert max_size_of(settings, "registered-through-the-api") is None


@pytest.mark.parametrize("text, message", [
    ("global:\n  min_free_bytes: -1\n", "global.min_free_bytes"),
    ("databases:\n  - {id: a, engine: postgres, database_name: a, max_size_bytes: 0}\n",
     "databases[0].max_size_bytes"),
    ("databases:\n  - {id: a, engine: postgres, database_name: a, max_size_bytes: 1GB}\n",
     "databases[0].max_size_bytes"),
])
def test_bad_bounds_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(text, runtime_from_env({}), {})
