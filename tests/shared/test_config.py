"""Loading config.yaml: the seed example verbatim, expansion, secrets files, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.catalog import effective
from shared.cli import main
from shared.config import load_settings, parse_config, runtime_from_env
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
    ("global: {schedule: 'not cron'}", r"global.schedule: not a valid"),
    ("global: {timezone: Nowhere/City}", r"global.timezone: unknown time zone"),
    ("global: {compression: rar}", r"global.compression"),
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
