"""Loading config.yaml: the seed example verbatim, expansion, secrets files, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import ValidationError

from cli import main
from shared.catalog import effective
from shared.config import load_settings, parse_config, runtime_from_env
from shared.config.types import validate_cron
from shared.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def _parse(text: str, **env: str):  # type: ignore[no-untyped-def]
    return parse_config(text, runtime_from_env({}), env)


def test_seed_example_loads_verbatim() -> None:
    settings = load_settings(str(FIXTURES / "seed-config.yaml"), env={})
    assert settings.global_.schedule == "0 2 * * *"
    assert settings.global_.max_parallel_jobs == 10
    assert settings.storage.type == "s3" and settings.storage.s3 is not None
    assert settings.storage.s3.bucket == "backups"
    assert settings.storage.s3.endpoint_url == "http://minio:9000"
    pg_main, mongo_logs = settings.databases
    assert (pg_main.id, pg_main.engine, pg_main.port) == ("pg_main_db", "postgres", 5432)
    assert (mongo_logs.id, mongo_logs.engine) == ("mongo_logs_db", "mongodb")
    assert effective(pg_main, settings.global_).schedule == "0 3 * * *"
    assert effective(pg_main, settings.global_).retention_days == 30
    assert effective(pg_main, settings.global_).max_backups == 10
    assert effective(mongo_logs, settings.global_).schedule == "0 2 * * *"
    assert effective(mongo_logs, settings.global_).max_backups == 5
    assert settings.package.compression == "zip" and settings.package.max_packages == 5


def test_repository_config_loads() -> None:
    settings = load_settings(str(REPO / "config.yaml"), env={})
    assert settings.storage.type == "local"


def test_env_expansion_and_defaults() -> None:
    settings = _parse(
        "databases:\n"
        "  - {id: a, engine: postgres, host: '${DB_HOST:-localhost}',"
        "     database_name: '${DB_NAME}', password: '${DB_PW}'}\n", DB_NAME="shop", DB_PW="pw")
    db = settings.databases[0]
    assert (db.host, db.database_name, db.password) == ("localhost", "shop", "pw")


def test_unset_variable_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"databases\[0\].password: environment variable PW"):
        _parse("databases:\n  - {id: a, engine: postgres, database_name: x, password: '${PW}'}")


def test_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    settings = _parse(f"databases:\n  - {{id: a, engine: postgres, database_name: x,"
                      f" password_file: '{secret}'}}")
    assert settings.databases[0].password == "from-a-file"
    with pytest.raises(ConfigError, match=r"databases\[0\].password_file: cannot read"):
        _parse("databases:\n  - {id: a, engine: postgres, database_name: x,"
               " password_file: /nonexistent/pw}")


@pytest.mark.parametrize(("text", "message"), [
    ("databases:\n  - {id: a, engine: x, database_name: d}",
     r"databases\[0\].engine: Must be one of: postgres, mongodb"),
    ("databases:\n  - {id: a, engine: postgres, database_name: d}\n"
     "  - {id: b, engine: oracle, database_name: d}",
     r"databases\[1\].engine: Must be one of: postgres, mongodb"),
    ("global: {schedule: 'not cron'}", r"global.schedule: a cron expression has 5 fields"),
    ("global: {schedule: '0 25 * * *'}", r"global.schedule: hour: 25 is out of range 0-23"),
    ("package-conf: {schedule: '@reboot'}", r"package-conf.schedule: unknown cron macro"),
    ("global: {timezone: Nowhere/City}", r"global.timezone: unknown time zone"),
    ("global: {compression: rar}", r"global.compression"),
    ("global: {zstd_level: 22}", r"global.zstd_level: Must be greater than or equal to 1 "
                                 r"and less than or equal to 19"),
    ("global: {zstd_threads: -2}", r"global.zstd_threads: Must be greater than or equal to -1"),
    ("global: {zstd_threads: '4'}", r"global.zstd_threads: Not a valid integer"),
    ("global: {retenton_days: 3}", r"global.retenton_days: Unknown field"),
    ("storage: {type: s3}", r"storage.s3: required when storage.type is s3"),
    ("storage: {type: ftp}", r"storage.type"),
    ("package-conf: {compression: rar}", r"package-conf.compression"),
    ("databases:\n  - {id: a, engine: postgres, database_name: d}\n"
     "  - {id: a, engine: postgres, database_name: d}", r"databases\[1\].id: duplicate"),
    ("databases:\n  - {id: 'a b', engine: postgres, database_name: d}", r"databases\[0\].id"),
    ("databases:\n  - {id: a, engine: postgres, database_name: d, port: 99999}",
     r"databases\[0\].port"),
    ("- just a list", r"top level must be a mapping"),
    ("global: [unclosed", r"not valid YAML"),
])
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(text)


@pytest.mark.parametrize(("cron", "message"), [
    ("61 * * * *", "minute: 61 is out of range 0-59"),
    ("0 25 * * *", "hour: 25 is out of range 0-23"),
    ("0 2 0 * *", "day of month: 0 is out of range 1-31"),
    ("0 2 32 * *", "day of month: 32 is out of range 1-31"),
    ("0 2 * 13 *", "month: 13 is out of range 1-12"),
    ("0 2 * * 8", "day of week: 8 is out of range 0-7"),
    ("0-70 * * * *", "minute: 70 is out of range 0-59"),
    ("0 1,2,24 * * *", "hour: 24 is out of range 0-23"),
    ("*/0 * * * *", "minute: '*/0' has a step of 0"),
    ("0 2 * foo *", "month: 'foo' is not valid"),
    ("0 2 * * someday", "day of week: 'someday' is not valid"),
    ("0 2 30 2 *", "day of month: 30 never occurs in month 2"),
    ("0 2 * *", "a cron expression has 5 fields (minute hour day-of-month month day-of-week),"
                " '0 2 * *' has 4"),
    ("0 0 2 * * *", "'0 0 2 * * *' has 6"),  # no seconds field
    ("", "'' has 0"),
    ("@reboot", "unknown cron macro '@reboot': use one of @yearly, @annually"),
    ("@DAILY", "unknown cron macro"),
    (" @daily", "write the macro without spaces"),
])
def test_cron_errors_name_the_field(cron: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_cron(cron)
    assert message in str(raised.value)


@pytest.mark.parametrize("cron", [
    "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
    "0 2 * * *", "*/15 * * * *", "0 2 * * 1-5", "0 2 * * 7", "30 4 1,15 * *", "0 2 * jan mon",
    "0 2 L * *", "0 2 * * 1#2", "0 2 29 2 *",
])
def test_cron_macros_and_usual_expressions_are_accepted(cron: str) -> None:
    validate_cron(cron)
    settings = _parse(f"global: {{schedule: '{cron}'}}\npackage-conf: {{schedule: '{cron}'}}")
    assert settings.global_.schedule == cron and settings.package.schedule == cron


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(str(tmp_path / "nope.yaml"), env={})


def test_check_config_prints_effective_settings_with_masked_passwords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", str(FIXTURES / "seed-config.yaml")]) == 0
    out = capsys.readouterr().out
    assert '"password": "***"' in out
    assert "mongo_password" not in out and '"password": "password"' not in out
    assert '"schedule": "0 3 * * *"' in out and '"max_backups": 5' in out


def test_check_config_fails_on_bad_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("databases:\n  - {id: a, engine: oracle, database_name: d}\n")
    assert main(["check-config", str(bad)]) == 2
    assert "databases[0].engine" in capsys.readouterr().err


def test_zstd_level_and_threads_are_global_settings() -> None:
    settings = _parse("global: {compression: zstd, zstd_level: 9, zstd_threads: -1}")
    assert (settings.global_.zstd_level, settings.global_.zstd_threads) == (9, -1)
    defaults = _parse("global: {compression: zstd}").global_
    assert (defaults.zstd_level, defaults.zstd_threads) == (3, 0)
