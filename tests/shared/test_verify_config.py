"""The verify section: readable errors naming the key, and per-database keys over global ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.catalog import verify_settings
from shared.config import Settings, parse_config, runtime_from_env
from shared.errors import ConfigError

BASE = """
global:
  verify: {schedule: "30 4 * * *", test_restore: true,
           scratch: {host: scratch.internal, username: v, password: s3cret, engine: postgres}}
databases:
  - {id: a, engine: postgres, database_name: a}
  - {id: b, engine: postgres, database_name: b, verify: {schedule: null}}
  - {id: c, engine: mongodb, database_name: c, verify: {test_restore: false}}
"""


def _parse(text: str) -> Settings:
    return parse_config(text, runtime_from_env({}), {})


def test_a_database_overrides_the_global_keys_it_sets() -> None:
    settings = _parse(BASE)
    a = verify_settings(settings, "a", "postgres")
    assert (a.schedule, a.test_restore) == ("30 4 * * *", True)
    assert a.scratch is not None and (a.scratch.host, a.scratch.password) == (
        "scratch.internal", "s3cret")
    b = verify_settings(settings, "b", "postgres")
    assert (b.schedule, b.test_restore) == (None, True)
    c = verify_settings(settings, "c", "mongodb")
    assert (c.schedule, c.test_restore) == ("30 4 * * *", False)
    # The global scratch server is a PostgreSQL one: MongoDB restores on its own server.
    assert c.scratch is None
    # A database registered through the API follows the global section.
    assert verify_settings(settings, "api-db", "postgres").test_restore is True


def test_without_a_verify_section_nothing_is_verified_on_a_schedule() -> None:
    settings = _parse("databases: [{id: a, engine: postgres, database_name: a}]")
    found = verify_settings(settings, "a", "postgres")
    assert (found.schedule, found.test_restore, found.scratch) == (None, False, None)


@pytest.mark.parametrize(("section", "message"), [
    ("databases:\n  - {id: a, engine: postgres, database_name: a}\n"
     "  - {id: b, engine: postgres, database_name: b}\n"
     "  - {id: c, engine: postgres, database_name: c, verify: {schedule: '61 * * * *'}}",
     "databases[2].verify.schedule: minute: 61 is out of range 0-59"),
    ("global:\n  verify: {test_restore: maybe}", "global.verify.test_restore: Not a valid"),
    ("global:\n  verify: {every: day}", "global.verify.every: Unknown field."),
    ("global:\n  verify: {scratch: {port: 5432}}",
     "global.verify.scratch.host: Missing data for required field."),
    ("global:\n  verify: {scratch: {host: h, engine: oracle}}",
     "global.verify.scratch.engine: Must be one of: postgres, mongodb."),
    ("global:\n  verify: {scratch: {host: h, engine: postgres, options: {authSource: x}}}",
     "global.verify.scratch.options.authSource: unknown option for engine postgres"),
])
def test_a_bad_verify_section_names_the_key(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _parse(section)
    assert message in str(raised.value)


def test_the_scratch_password_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "scratch-password"
    secret.write_text("from-a-file\n")
    settings = _parse(f"global:\n  verify: {{scratch: {{host: h, password_file: {secret}}}}}")
    assert settings.global_.verify is not None and settings.global_.verify.scratch is not None
    assert settings.global_.verify.scratch.password == "from-a-file"
    assert "from-a-file" not in repr(settings)
