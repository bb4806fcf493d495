"""Engine options: unknown or ill-typed keys are named; a uri's password is never shown."""

from __future__ import annotations

import pytest

from shared.config import RuntimeSettings, parse_config
from shared.engines.options import (
    api_option_errors,
    connection_options,
    option_errors,
    public_options,
    uri_hosts,
)
from shared.errors import ConfigError


def test_known_options_pass() -> None:
    assert option_errors("mongodb", {"authSource": "admin", "authMechanism": "PLAIN",
                                     "tls": True, "oplog": False, "replicaSet": "rs0",
                                     "uri": "mongodb+srv://c.example/"}) == {}
    assert option_errors("postgres", {"sslmode": "require", "pg_bin_dir": "/opt/pg/bin"}) == {}


def test_unknown_and_invalid_options_are_named() -> None:
    errors = option_errors("mongodb", {"authSorce": "admin", "tls": "yes",
                                       "authMechanism": "MD5", "uri": "http://x"})
    assert set(errors) == {"authSorce", "tls", "authMechanism", "uri"}
    assert "unknown option for engine mongodb" in errors["authSorce"]
    assert errors["tls"] == "must be true or false"
    assert "PLAIN" in errors["authMechanism"]
    assert "sslmode" in option_errors("mongodb", {"sslmode": "require"})
    assert "oplog" in option_errors("postgres", {"oplog": True})


def test_public_options_mask_the_uri_password() -> None:
    shown = public_options({"uri": "mongodb://u:s3cret@h:1/db?tls=true", "tls": True})
    assert shown == {"uri": "mongodb://u:***@h:1/db?tls=true", "tls": True}
    assert public_options({"uri": "mongodb://h:1/"}) == {"uri": "mongodb://h:1/"}
    assert public_options(None) == {}


def test_config_file_names_a_bad_option() -> None:
    runtime = RuntimeSettings(config_path="c.yaml", data_dir="/tmp", database_url="sqlite://",
                              broker_url="memory://")
    text = ("databases:\n  - {id: a, engine: postgres, database_name: a}\n"
            "  - {id: b, engine: mongodb, database_name: b, options: {authSorce: admin}}\n")
    with pytest.raises(ConfigError, match=r"databases\[1\]\.options\.authSorce: unknown option"):
        parse_config(text, runtime, {})
    ok = text.replace("authSorce", "authSource")
    assert parse_config(ok, runtime, {}).databases[1].options == {"authSource": "admin"}


def test_options_that_choose_a_program_or_a_file_are_config_only() -> None:
    assert option_errors("postgres", {"pg_bin_dir": "/tmp/evil"}) == {}  # config may
    errors = api_option_errors("postgres", {"pg_bin_dir": "/tmp/evil", "sslmode": "disable"})
    assert set(errors) == {"pg_bin_dir"} and "config-only" in errors["pg_bin_dir"]
    errors = api_option_errors("mongodb", {"tlsCAFile": "/etc/ssl/x.pem", "authSource": "a"})
    assert set(errors) == {"tlsCAFile"}
    for uri in ("mongodb://h/?tlsCAFile=/etc/passwd", "mongodb://h/?TLSCERTIFICATEKEYFILE=/k",
                "mongodb://h/?authMechanism=MONGODB-AWS"):
        assert "config-only" in api_option_errors("mongodb", {"uri": uri})["uri"], uri
    assert "config-only" in api_option_errors("mongodb", {"authMechanism": "GSSAPI"})[
        "authMechanism"]
    assert api_option_errors("mongodb", {"uri": "mongodb://u:p@h1,h2/?tls=true"}) == {}


def test_uri_hosts_and_connection_options() -> None:
    assert uri_hosts("mongodb://u:p@h1:27017,h2,[::1]:5/db?x=1") == ["h1", "h2", "::1"]
    assert uri_hosts("mongodb+srv://cluster.example/") == ["cluster.example"]
    assert connection_options({"oplog": True, "restore_indexes": False, "tls": True}) == {
        "tls": True}
