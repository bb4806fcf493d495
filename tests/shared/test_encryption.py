"""age encryption: the config keys and their errors, who encrypts to whom, identity files,
and the streams themselves against the real `age` command line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import pytest

from shared.catalog import effective, identity_files
from shared.config import Settings, parse_config, runtime_from_env
from shared.encryption import Decryptor, identities_for, load_identities, make_encryptor
from shared.errors import BackupError, ConfigError
from shared.models import Database
from tests.age import AgeKey, make_key
from tests.peers import require

CHUNK = 1024 * 1024


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    return make_key(tmp_path / "key.txt")


@pytest.fixture
def other(tmp_path: Path) -> AgeKey:
    return make_key(tmp_path / "other.txt")


def _parse(text: str) -> Settings:
    return parse_config(text, runtime_from_env({}), {})


def _database(encryption: str) -> str:
    return f"""
databases:
  - id: shop
    engine: postgres
    database_name: shop
    encryption: {encryption}
"""


# --- config -----------------------------------------------------------------------------


def test_config_errors_name_the_key_and_never_echo_a_secret(key: AgeKey) -> None:
    cases = [
        ("global:\n  encryption: {type: age, recipients: [age1nope]}",
         "global.encryption.recipients[0]: must be an age public key"),
        (f"global:\n  encryption: {{type: age, recipients: [{key.secret}]}}",
         "global.encryption.recipients[0]: this is a secret key (an identity), not a "
         "recipient: give its public key (age-keygen -y key.txt)"),
        ("global:\n  encryption: {type: age}",
         "global.encryption.recipients: type age needs at least one recipient"),
        (f"global:\n  encryption: {{type: none, recipients: [{key.recipient}]}}",
         "global.encryption.recipients: recipients are for type age, not none"),
        ("global:\n  encryption: {type: gpg}", "global.encryption.type: Must be one of"),
        (_database(f"{{type: age, recipient: {key.recipient}}}"),
         "databases[0].encryption.recipient: Unknown field."),
        (_database("{type: age, recipients: [age1" + "q" * 58 + "]}"),
         "databases[0].encryption.recipients[0]: must be an age public key: age1… as printed "
         "by age-keygen (this one has a typo: its checksum does not match)"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError) as raised:
            _parse(text)
        assert message in raised.value.message
        assert key.secret not in raised.value.message


def test_who_new_backups_are_encrypted_to(key: AgeKey, other: AgeKey) -> None:
    settings = _parse(f"""
global:
  encryption: {{type: age, recipients: [{key.recipient}], identity_file: /keys/global.txt}}
databases:
  - {{id: inherits, engine: postgres, database_name: a}}
  - {{id: inherits-too, engine: postgres, database_name: a, encryption: null}}
  - {{id: opts-out, engine: postgres, database_name: a, encryption: {{type: none}}}}
  - id: own
    engine: postgres
    database_name: a
    encryption: {{type: age, recipients: [{other.recipient}], identity_file: /keys/own.txt}}
""")
    defaults = settings.global_
    inherits, inherits_too, opts_out, own = settings.databases
    global_only = {"type": "age", "recipients": [key.recipient]}
    assert effective(inherits, defaults).encryption == global_only
    assert effective(inherits_too, defaults).encryption == global_only
    assert effective(opts_out, defaults).encryption is None
    # The config replaces the global recipients for one of its databases...
    assert effective(own, defaults).encryption == {"type": "age",
                                                   "recipients": [other.recipient]}
    # ...while the API can only add to them, and cannot turn them off.
    api_row = Database(id="api", managed_by="api",
                       encryption={"type": "age", "recipients": [other.recipient]})
    assert effective(api_row, defaults).encryption == {
        "type": "age", "recipients": [key.recipient, other.recipient]}
    api_off = Database(id="api", managed_by="api", encryption={"type": "none"})
    assert effective(api_off, defaults).encryption == global_only
    # A database's own identity file first, then the global one.
    assert identity_files(settings, "own") == ["/keys/own.txt", "/keys/global.txt"]
    assert identity_files(settings, "inherits") == ["/keys/global.txt"]
    assert identity_files(_parse(""), "own") == []


# --- identity files ---------------------------------------------------------------------


def test_identity_files_are_read_without_quoting_them(tmp_path: Path, key: AgeKey,
                                                      other: AgeKey) -> None:
    both = tmp_path / "both.txt"
    both.write_text(key.path.read_text() + "\n" + other.path.read_text())
    assert [str(i.to_public()) for i in load_identities(str(both))] == [key.recipient,
                                                                        other.recipient]
    broken = tmp_path / "broken.txt"
    broken.write_text(f"# a comment\n{key.secret[:-4]}XXXX\n")
    with pytest.raises(BackupError) as raised:
        load_identities(str(broken))
    assert raised.value.message == (
        f"encryption.identity_file {str(broken)!r}, line 2: not an age secret key "
        "(AGE-SECRET-KEY-1…; only X25519 keys from age-keygen are supported)")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(BackupError, match="holds no age secret key"):
        load_identities(str(empty))
    with pytest.raises(BackupError, match="cannot read encryption.identity_file .*No such file"):
        load_identities(str(tmp_path / "missing.txt"))


def test_the_right_identity_is_found_or_the_message_says_what_to_do(
    key: AgeKey, other: AgeKey,
) -> None:
    encryption = {"type": "age", "recipients": [key.recipient]}
    with pytest.raises(BackupError) as raised:
        identities_for("backup 1234", encryption, [])
    assert raised.value.message == ("backup 1234 is encrypted with age; set "
                                     "encryption.identity_file in config.yaml to verify or "
                                     "restore it")
    with pytest.raises(BackupError) as raised:
        identities_for("backup 1234", encryption, [str(other.path)])
    assert raised.value.message == (f"backup 1234 is encrypted with age to {key.recipient}; "
                                    "none of the keys in encryption.identity_file "
                                    f"({other.path}) is one of them")
    found = identities_for("backup 1234", encryption, [str(other.path), str(key.path)])
    assert [str(i.to_public()) for i in found] == [key.recipient]


# --- streams ----------------------------------------------------------------------------


def _encrypt(chunks: list[bytes], recipients: list[str]) -> bytes:
    out = []
    with make_encryptor({"type": "age", "recipients": recipients}) as encryptor:
        out = [encryptor.encrypt(chunk) for chunk in chunks]
        out.append(encryptor.flush())
    return b"".join(out)


def _decrypt(data: bytes, key: AgeKey) -> tuple[bytes, str | None]:
    decryptor = Decryptor(load_identities(str(key.path)))
    out = [decryptor.decrypt(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
    out.append(decryptor.finish())
    return b"".join(out), decryptor.error


@pytest.mark.requires_peer("age")
def test_our_stream_is_a_standard_age_file_for_every_recipient(
    tmp_path: Path, key: AgeKey, other: AgeKey,
) -> None:
    chunks = [os.urandom(CHUNK) for _ in range(12)] + [b"", b"x" * 10, os.urandom(777_777)]
    plain = b"".join(chunks)
    sealed = tmp_path / "artifact.age"
    sealed.write_bytes(_encrypt(chunks, [key.recipient, other.recipient]))
    for identity in (key, other):
        opened = subprocess.run([require("age"), "-d", "-i", str(identity.path), str(sealed)],
                                capture_output=True, timeout=60)
        assert opened.returncode == 0, opened.stderr
        assert hashlib.sha256(opened.stdout).digest() == hashlib.sha256(plain).digest()


@pytest.mark.requires_peer("age")
def test_we_read_what_the_age_command_line_wrote(tmp_path: Path, key: AgeKey) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(5 * CHUNK + 12345))
    sealed = tmp_path / "plain.age"
    subprocess.run([require("age"), "-r", key.recipient, "-o", str(sealed), str(plain)],
                   check=True, timeout=60)
    data, error = _decrypt(sealed.read_bytes(), key)
    assert error is None and data == plain.read_bytes()


def test_a_damaged_or_truncated_stream_is_an_error_not_short_data(key: AgeKey) -> None:
    plain = os.urandom(3 * CHUNK)
    sealed = _encrypt([plain], [key.recipient])
    assert _decrypt(sealed, key) == (plain, None)
    flipped = bytearray(sealed)
    flipped[len(flipped) // 2] ^= 1
    truncated = sealed[: len(sealed) - 100]
    for broken in (bytes(flipped), truncated):
        data, error = _decrypt(broken, key)
        assert error is not None and error.startswith("the age stream is damaged or truncated")
        assert data != plain


def test_an_abandoned_stream_leaves_no_thread_behind(key: AgeKey) -> None:
    before = threading.active_count()
    for _ in range(5):
        with pytest.raises(RuntimeError), \
                make_encryptor({"type": "age", "recipients": [key.recipient]}) as encryptor:
            encryptor.encrypt(os.urandom(CHUNK))
            raise RuntimeError("the dump failed")
        decryptor = Decryptor(load_identities(str(key.path)))
        decryptor.decrypt(b"age-encryption.org/v1\n")
        decryptor.close()
    assert threading.active_count() == before
    assert make_encryptor(None).encrypt(b"plain") == b"plain"
