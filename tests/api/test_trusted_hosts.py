"""DNS rebinding: a request whose ``Host`` is not one of ours gets a 400 and nothing else.

The attack: a page on ``evil.example`` makes that name resolve to 127.0.0.1, and the
visitor's browser then sends the page's requests to this API as ``Host: evil.example``.
Every endpoint of the OpenAPI document is tried that way, with and without a key, and
must answer 400 before anything else looks at the request.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from api.app import create_app
from api.trusted_hosts import trusted_hosts
from shared.config import load_settings, parse_config, runtime_from_env
from shared.errors import ConfigError
from tests.conftest import Client

REBINDING_HOSTS = ["evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                   "localhost.evil.example", "LOCALHOST.evil.example"]


def _operations(api: Client) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document, path parameters filled in."""
    spec: dict[str, Any] = api.get("/openapi.json").json()
    operations = []
    for path, item in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                operations.append((method.upper(), concrete))
    return operations


def _assert_refused(response: requests.Response, host: str) -> None:
    assert response.status_code == 400, (host, response.status_code, response.text)
    body = response.json()
    assert body["code"] == 400
    assert "is not trusted" in body["message"] and "api.trusted_hosts" in body["message"]


def test_a_rebinding_host_is_refused_on_every_endpoint(api: Client) -> None:
    operations = _operations(api)
    assert ("GET", "/health") in operations and ("POST", "/backups") in operations
    anonymous = requests.Session()
    for method, path in operations:
        for session in (api.session, anonymous):  # with the admin key, and without a key
            response = session.request(method, api.base + path, json={}, timeout=30,
                                       headers={"Host": "evil.example"})
            _assert_refused(response, f"{method} {path}")
    for host in REBINDING_HOSTS:
        _assert_refused(api.session.get(api.base + "/backups", headers={"Host": host},
                                        timeout=30), host)
    # Swagger UI and /metrics too: nothing is served under a foreign name.
    for path in ("/docs", "/docs/", "/metrics", "/nowhere"):
        _assert_refused(api.session.get(api.base + path, headers={"Host": "evil.example"},
                                        timeout=30), path)


def test_loopback_names_with_any_port_are_ours(api: Client) -> None:
    port = api.base.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "127.0.0.1",
                 "localhost"):
        response = api.session.get(api.base + "/backups", headers={"Host": host}, timeout=30)
        assert response.status_code == 200, (host, response.text)


# --- the configured names and the defaults, on an app built in this process ------------


def _settings(tmp_path: Path, config: str) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    (tmp_path / "data").mkdir()
    env = {"BACKUP_API_CONFIG": str(path), "BACKUP_API_DATA_DIR": str(tmp_path / "data")}
    return load_settings(env=env)


def test_configured_names_and_subdomains_are_trusted(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "api:\n  trusted_hosts: [Backup.Example.Test, .corp.test]\n"
                                   "auth:\n  disabled: true\n")
    client = create_app(settings, bind_host="127.0.0.1").test_client()
    for host in ("backup.example.test", "backup.example.test:8000", "db.corp.test",
                 "a.b.corp.test:443", "corp.test", "localhost:8000", "127.0.0.1"):
        assert client.get("/backups", headers={"Host": host}).status_code == 200, host
    for host in ("example.test", "evil-corp.test", "corp.test.evil.example",
                 "backup.example.test.evil.example", "evilcorp.test"):
        response = client.get("/backups", headers={"Host": host})
        assert response.status_code == 400, host
        assert "not trusted" in response.get_json()["message"]


def test_defaults_follow_the_bind_address() -> None:
    settings = parse_config("", runtime_from_env({}), {})
    loopback = {"localhost", "127.0.0.1", "[::1]"}
    assert set(trusted_hosts(settings, "127.0.0.1")) == loopback
    assert set(trusted_hosts(settings, "10.1.2.3")) == loopback | {"10.1.2.3"}
    assert set(trusted_hosts(settings, "fd00::5")) == loopback | {"[fd00::5]"}
    # Bound to every interface (compose): this machine's name and its addresses too, so a
    # neighbour container reaching it by container name or address is answered.
    everywhere = trusted_hosts(settings, "0.0.0.0")
    assert socket.gethostname().lower() in everywhere
    assert loopback <= set(everywhere)
    assert "0.0.0.0" not in everywhere


@pytest.mark.parametrize("value", ["http://backup.example.test", "backup.example.test:8000",
                                   "*", "*.example.test", "back up", "", "exa_mple.test"])
def test_a_trusted_host_that_is_not_a_name_or_address_is_a_config_error(
        value: str) -> None:
    config = f"api:\n  trusted_hosts: [ok.example.test, {value!r}]\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(config, runtime_from_env({}), {})
    assert "api.trusted_hosts[1]" in raised.value.message


def test_ipv6_and_case_are_normalised() -> None:
    config = "api:\n  trusted_hosts: ['FD00::1', '[fd00::2]', Backup.EXAMPLE.test]\n"
    settings = parse_config(config, runtime_from_env({}), {})
    assert settings.api.trusted_hosts == ("[fd00::1]", "[fd00::2]", "backup.example.test")
