"""A YAML syntax error names its line, column and key, never a value (issue 13)."""

from __future__ import annotations

import pytest

from shared.config import RuntimeSettings, parse_config
from shared.config.yaml_errors import key_path
from shared.errors import ConfigError

SECRET = "Hidden-Value-4242"
RUNTIME = RuntimeSettings(config_path="config.yaml", data_dir="/tmp", database_url="sqlite://",
                          broker_url="memory://")


@pytest.mark.parametrize("document, where, words", [
    ('databases:\n  - id: a\n    password: "{s}\n    database_name: x\n',
     "databases[0].password", "while scanning a quoted scalar (line 3, column 15)"),
    ("databases:\n  - id: a\n    password: '{s}\n", "databases[0].password",
     "found unexpected end of stream (line 4, column 1)"),
    ("databases:\n  - id: a\n\tpassword: {s}\n", "databases.password", "'\\t' (a tab)"),
    ("databases:\n  - id: a\n    password: *{s}\n", "databases[0].password",
     "found undefined alias (hidden) (line 3, column 15)"),
    ('databases:\n  - id: a\n    password: "{s}\\q"\n', "databases[0].password",
     "found unknown escape character (hidden)"),
    ("global:\n  schedule: x\ndatabases:\n- id: z\n- id: a\n  password: {s}: b\n",
     "databases[1].password", "mapping values are not allowed here (line 6, column 30)"),
    ("storage:\n  s3:\n    secret_key: @{s}\n", "storage.s3.secret_key",
     "found character (hidden) that cannot start any token"),
    ("auth:\n  keys:\n    - name: ci\n      key: '{s}\n", "auth.keys[0].key", "quoted scalar"),
])
def test_the_error_locates_the_key_and_hides_the_value(document: str, where: str,
                                                       words: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(document.format(s=SECRET), RUNTIME, {})
    message = error.value.message
    assert SECRET not in message and SECRET[:6] not in message
    assert message.startswith(f"config.yaml is not valid YAML at key {where}: "), message
    assert words in message, message


@pytest.mark.parametrize("lines, index, path", [
    (["a:", "  b:", "    c: 1"], 2, "a.b.c"),
    (["a:", "  - x: 1", "  - x: 2", "    y: 3"], 3, "a[1].y"),
    (["a:", "- x: 1", "- x: 2"], 2, "a[1].x"),
    (["a:", "  # a comment", "", "  b: 1"], 3, "a.b"),
    (["a:", "  - 1", "  - 2"], 2, None),  # no key on the line
    (["a: 1"], 5, None),
])
def test_key_path(lines: list[str], index: int, path: str | None) -> None:
    assert key_path(lines, index) == path
