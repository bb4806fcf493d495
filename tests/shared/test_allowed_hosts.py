"""global.allowed_hosts: entries, the check by name, address and DNS, and the config rules."""

from __future__ import annotations

import socket

import pytest

from shared.allowed_hosts import AllowedHosts, HostNotAllowed, entry_problem, reachable
from shared.config import RuntimeSettings, parse_config
from shared.engines import Target
from shared.errors import ConfigError

RUNTIME = RuntimeSettings(config_path="c.yaml", data_dir="/tmp", database_url="sqlite://",
                          broker_url="memory://")
LOCALHOST = socket.getaddrinfo("localhost", 5432, type=socket.SOCK_STREAM)[0][4][0]


def pg(host: str, **options: object) -> Target:
    return Target(engine="postgres", host=host, port=5432, database_name="d",
                  options=dict(options))


@pytest.mark.parametrize("entry", ["db.internal", "10.0.0.0/8", "192.0.2.7", "fd00::/8",
                                   "::1", "localhost", "10.1.2.3/8"])
def test_valid_entries(entry: str) -> None:
    assert entry_problem(entry) is None


@pytest.mark.parametrize("entry", ["bad name", "10.0.0.300", "1.2.3.4/40", "", "http://x"])
def test_invalid_entries_are_named(entry: str) -> None:
    assert entry_problem(entry) is not None


def test_a_listed_name_matches_itself_without_dns() -> None:
    allowed = AllowedHosts.of(["db.internal"])
    assert allowed.check("db.internal", 5432) is None
    assert allowed.check("DB.Internal.", 5432) is None
    with pytest.raises(HostNotAllowed, match="'other.internal' is not in global.allowed_hosts"):
        allowed.check("other.internal", 5432)


def test_addresses_and_resolved_names_must_fall_in_a_network() -> None:
    allowed = AllowedHosts.of(["10.0.0.0/8", LOCALHOST + ("/128" if ":" in LOCALHOST
                                                          else "/32")])
    assert allowed.check("10.9.8.7", 5432) is None
    assert allowed.check("::ffff:10.0.0.1", 5432) is None
    with pytest.raises(HostNotAllowed):
        allowed.check("192.0.2.1", 5432)
    # A name is resolved, and the address that was checked is the one to connect to.
    assert allowed.check("localhost", 5432) == LOCALHOST
    # A name that does not resolve is refused in the same words (no DNS oracle).
    with pytest.raises(HostNotAllowed, match="'nohost.invalid' is not in"):
        allowed.check("nohost.invalid", 5432)


def test_postgres_targets_are_pinned_and_mongodb_uris_checked() -> None:
    allowed = AllowedHosts.of(["127.0.0.0/8", "::1/128", "db.internal"])
    assert reachable(pg("localhost"), allowed).hostaddr == LOCALHOST
    assert reachable(pg("db.internal"), allowed).hostaddr is None
    with pytest.raises(HostNotAllowed):
        reachable(pg("/var/run/postgresql"), allowed)  # a socket path is no listed host
    mongo = Target(engine="mongodb", host="db.internal", port=27017, database_name="d",
                   options={"uri": "mongodb://u:p@db.internal,192.0.2.9:27017/"})
    with pytest.raises(HostNotAllowed, match="192.0.2.9"):
        reachable(mongo, allowed)
    srv = Target(engine="mongodb", host="x", port=27017, database_name="d",
                 options={"uri": "mongodb+srv://cluster.example/"})
    with pytest.raises(HostNotAllowed, match="cluster.example"):
        reachable(srv, allowed)
    assert reachable(srv, AllowedHosts.of(["cluster.example"])) == srv
    # No list: no limit, nothing resolved.
    assert reachable(pg("anything.example"), AllowedHosts.of([])) == pg("anything.example")


def test_config_takes_the_list_and_refuses_an_address_outside_it() -> None:
    text = ("global:\n  allowed_hosts: [db.internal, 10.0.0.0/8]\n"
            "databases:\n  - {id: a, engine: postgres, database_name: a, host: 10.1.1.1,"
            " restore_target: true}\n  - {id: b, engine: postgres, database_name: b,"
            " host: elsewhere.example}\n")
    settings = parse_config(text, RUNTIME, {})
    assert settings.global_.allowed_hosts == ("db.internal", "10.0.0.0/8")
    assert settings.databases[0].restore_target is True
    assert settings.databases[1].restore_target is False
    with pytest.raises(ConfigError, match=r"databases\[0\]\.host: 192.168.1.1 is not in "
                                          r"global.allowed_hosts"):
        parse_config(text.replace("10.1.1.1", "192.168.1.1"), RUNTIME, {})
    with pytest.raises(ConfigError, match=r"global\.allowed_hosts\[1\]: 'bad name'"):
        parse_config("global:\n  allowed_hosts: [ok.example, bad name]\n", RUNTIME, {})
