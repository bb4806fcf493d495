"""Load ``config.yaml`` and the environment once, validate them, return typed settings.

The rest of the code never reads raw dicts or ``os.environ``: it receives a
:class:`Settings`. Errors name the key (``databases[1].engine: ...``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from shared.allowed_hosts import AllowedHosts, entry_problem
from shared.config.encryption import EncryptionSchema
from shared.config.notifications import notifications_field
from shared.config.types import (
    COMPRESSIONS,
    DATABASE_ID_PATTERN,
    ENGINES,
    ID_ERROR,
    KEY_NAME_ERROR,
    KEY_NAME_PATTERN,
    MIN_CONFIG_KEY_LENGTH,
    PACKAGE_FORMATS,
    SCOPES,
    ZSTD_MAX_LEVEL,
    ApiSettings,
    AuthSettings,
    ConfigKey,
    DatabaseSpec,
    GlobalSettings,
    PackageSettings,
    RuntimeSettings,
    S3Settings,
    Settings,
    StorageSettings,
    keep_count,
    validate_cron,
    validate_timezone,
)
from shared.config.verify import VerifySchema
from shared.config.yaml_errors import describe_yaml_error
from shared.engines.options import option_errors
from shared.errors import ConfigError

# --- schemas ------------------------------------------------------------------------------


def _read_secret_file(path: str, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValidationError(f"cannot read {path!r}: {exc.strerror}", field_name=key) from exc


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _allowed_host(value: str) -> None:
    if (problem := entry_problem(value)) is not None:
        raise ValidationError(problem)


class GlobalSchema(_Strict):
    schedule = fields.String(validate=validate_cron)
    compression = fields.String(validate=validate.OneOf(COMPRESSIONS))
    zstd_level = fields.Integer(strict=True, validate=validate.Range(min=1, max=ZSTD_MAX_LEVEL))
    zstd_threads = fields.Integer(strict=True, validate=validate.Range(min=-1, max=256))
    retention_days = fields.Integer(validate=validate.Range(min=0, max=100_000))
    max_backups = fields.Integer(validate=validate.Range(min=0, max=100_000))
    min_backups = fields.Integer(validate=validate.Range(min=0, max=100_000))
    keep_daily = keep_count()
    keep_weekly = keep_count()
    keep_monthly = keep_count()
    keep_yearly = keep_count()
    max_parallel_jobs = fields.Integer(validate=validate.Range(min=1, max=256))
    timezone = fields.String(validate=validate_timezone)
    backup_time_limit = fields.Integer(validate=validate.Range(min=10))
    beat_interval = fields.Integer(validate=validate.Range(min=1, max=60))
    heartbeat_timeout = fields.Integer(validate=validate.Range(min=4))
    overdue_grace = fields.Integer(validate=validate.Range(min=0))
    max_attempts = fields.Integer(validate=validate.Range(min=1, max=10))
    min_free_bytes = fields.Integer(validate=validate.Range(min=0))
    allowed_hosts = fields.List(fields.String(validate=_allowed_host))
    encryption = fields.Nested(EncryptionSchema, allow_none=True)
    verify = fields.Nested(VerifySchema, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> GlobalSettings:
        if "allowed_hosts" in data:
            data["allowed_hosts"] = tuple(dict.fromkeys(data["allowed_hosts"]))
        return GlobalSettings(**data)


class S3Schema(_Strict):
    endpoint_url = fields.String(allow_none=True, validate=validate.URL(require_tld=False))
    access_key = fields.String(allow_none=True)
    access_key_file = fields.String()
    secret_key = fields.String(allow_none=True)
    secret_key_file = fields.String()
    bucket = fields.String(required=True, validate=validate.Length(min=3, max=63))
    region = fields.String(allow_none=True)
    prefix = fields.String()
    path_style = fields.Boolean(allow_none=True)
    create_bucket = fields.Boolean()
    server_side_encryption = fields.String(
        allow_none=True, validate=validate.OneOf(["AES256", "aws:kms"])
    )
    object_metadata = fields.Boolean()

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> S3Settings:
        for key in ("access_key", "secret_key"):
            if f"{key}_file" in data:
                data[key] = _read_secret_file(data.pop(f"{key}_file"), f"{key}_file")
        data["prefix"] = data.get("prefix", "").strip("/")
        return S3Settings(**data)


class StorageSchema(_Strict):
    type = fields.String(validate=validate.OneOf(["local", "s3"]))
    path = fields.String()
    s3 = fields.Nested(S3Schema)

    @validates_schema
    def s3_needs_section(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("type") == "s3" and not data.get("s3"):
            raise ValidationError("required when storage.type is s3", field_name="s3")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> StorageSettings:
        return StorageSettings(**data)


class DatabaseSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(
        DATABASE_ID_PATTERN, error=ID_ERROR))
    name = fields.String()
    engine = fields.String(required=True, validate=validate.OneOf(ENGINES))
    host = fields.String(validate=validate.Length(min=1, max=255))
    port = fields.Integer(validate=validate.Range(min=1, max=65535))
    username = fields.String(allow_none=True)
    password = fields.String(allow_none=True)
    password_file = fields.String()
    database_name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    options = fields.Dict(keys=fields.String())
    schedule = fields.String(validate=validate_cron)
    timezone = fields.String(validate=validate_timezone)
    compression = fields.String(validate=validate.OneOf(COMPRESSIONS))
    retention_days = fields.Integer(validate=validate.Range(min=0, max=100_000))
    max_backups = fields.Integer(validate=validate.Range(min=0, max=100_000))
    min_backups = fields.Integer(validate=validate.Range(min=0, max=100_000))
    keep_daily = keep_count()
    keep_weekly = keep_count()
    keep_monthly = keep_count()
    keep_yearly = keep_count()
    package = fields.Boolean()
    enabled = fields.Boolean()
    restore_target = fields.Boolean()
    max_size_bytes = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    # Absent or null: the global encryption applies; {type: none} turns it off here.
    encryption = fields.Nested(EncryptionSchema, allow_none=True)
    # Absent or null: the global verify applies; keys given here override its keys.
    verify = fields.Nested(VerifySchema, allow_none=True)

    @validates_schema
    def engine_options(self, data: dict[str, Any], **_: Any) -> None:
        errors = option_errors(data["engine"], data.get("options"))
        if errors:
            raise ValidationError({"options": {k: [v] for k, v in errors.items()}})

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> DatabaseSpec:
        if "password_file" in data:
            data["password"] = _read_secret_file(data.pop("password_file"), "password_file")
        return DatabaseSpec(**data)


class PackageSchema(_Strict):
    schedule = fields.String(allow_none=True, validate=validate_cron)
    compression = fields.String(validate=validate.OneOf(PACKAGE_FORMATS))
    retention_days = fields.Integer(validate=validate.Range(min=0, max=100_000))
    max_packages = fields.Integer(validate=validate.Range(min=0, max=100_000))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> PackageSettings:
        return PackageSettings(**data)


class ConfigKeySchema(_Strict):
    name = fields.String(required=True, validate=validate.Regexp(
        KEY_NAME_PATTERN, error=KEY_NAME_ERROR))
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         validate=validate.Length(min=1))
    key = fields.String(validate=validate.Length(
        min=MIN_CONFIG_KEY_LENGTH,
        error=f"too short: use at least {MIN_CONFIG_KEY_LENGTH} random characters "
              "(e.g. `openssl rand -base64 32`)"))
    key_file = fields.String()

    @validates_schema
    def one_key(self, data: dict[str, Any], **_: Any) -> None:
        if ("key" in data) == ("key_file" in data):
            raise ValidationError("give exactly one of key or key_file", field_name="key")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ConfigKey:
        key = data.get("key")
        if "key_file" in data:
            key = _read_secret_file(data["key_file"], "key_file")
            if len(key) < MIN_CONFIG_KEY_LENGTH:
                raise ValidationError(f"the key in {data['key_file']!r} is too short: use at "
                                      f"least {MIN_CONFIG_KEY_LENGTH} random characters",
                                      field_name="key_file")
        assert key is not None
        return ConfigKey(name=data["name"], scopes=tuple(dict.fromkeys(data["scopes"])),
                         key=key)


class AuthSchema(_Strict):
    keys = fields.List(fields.Nested(ConfigKeySchema))
    disabled = fields.Boolean()
    metrics_public = fields.Boolean()

    @validates_schema
    def unique_keys(self, data: dict[str, Any], **_: Any) -> None:
        names: set[str] = set()
        values: set[str] = set()
        for index, key in enumerate(data.get("keys") or []):
            if key.name in names or key.key in values:
                what = "name" if key.name in names else "key"
                raise ValidationError({"keys": {index: {what: [f"duplicate {what}"]}}})
            names.add(key.name)
            values.add(key.key)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> AuthSettings:
        return AuthSettings(keys=tuple(data.pop("keys", ())), **data)


# A host name (``.example.com``: any subdomain), an IPv4 address, or an IPv6 one in brackets.
_TRUSTED_HOST = re.compile(r"\.?[a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\]")


def _trusted_host(value: str) -> str:
    """Return ``value`` as the API compares it to a ``Host`` (lower case, IPv6 bracketed)."""
    host = value.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 address
    if not _TRUSTED_HOST.fullmatch(host):
        raise ValidationError(f"{value!r}: give a host name or an IP address, without scheme "
                              "or port (e.g. backup.example.com, .example.com, 10.0.0.5)")
    return host


class ApiSchema(_Strict):
    trusted_hosts = fields.List(fields.String(validate=validate.Length(min=1, max=253)))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ApiSettings:
        hosts = data.get("trusted_hosts") or []
        errors: dict[int, list[str]] = {}
        normalized = []
        for index, host in enumerate(hosts):
            try:
                normalized.append(_trusted_host(host))
            except ValidationError as exc:
                errors[index] = [str(m) for m in exc.messages]
        if errors:
            raise ValidationError({"trusted_hosts": errors})
        return ApiSettings(trusted_hosts=tuple(dict.fromkeys(normalized)))


class ConfigSchema(_Strict):
    global_ = fields.Nested(GlobalSchema, data_key="global")
    storage = fields.Nested(StorageSchema)
    databases = fields.List(fields.Nested(DatabaseSchema))
    package = fields.Nested(PackageSchema, data_key="package-conf")
    api = fields.Nested(ApiSchema)
    auth = fields.Nested(AuthSchema)
    notifications = notifications_field()

    @validates_schema
    def hosts_allowed(self, data: dict[str, Any], **_: Any) -> None:
        # Without DNS, so a resolver down at start cannot stop the service: an address
        # outside the list is an error now, a name is checked when a backup connects.
        allowed = AllowedHosts.of(getattr(data.get("global_"), "allowed_hosts", ()))
        for index, db in enumerate(data.get("databases") or []):
            if allowed.literal_verdict(db.host) is False:
                raise ValidationError({"databases": {index: {"host": [
                    f"{db.host} is not in global.allowed_hosts"]}}})

    @validates_schema
    def unique_ids(self, data: dict[str, Any], **_: Any) -> None:
        seen: set[str] = set()
        for index, db in enumerate(data.get("databases") or []):
            if db.id in seen:
                raise ValidationError(
                    {"databases": {index: {"id": [f"duplicate database id {db.id!r}"]}}}
                )
            seen.add(db.id)


# --- loading ------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, env, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if env.get(name):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set")

    return _VAR.sub(substitute, value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _flatten(messages: Any, path: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, sub in messages.items():
            if key == "_schema":
                out += _flatten(sub, path)
            elif isinstance(key, int):
                out += _flatten(sub, f"{path}[{key}]")
            else:
                out += _flatten(sub, _join(path, str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{path or 'config'}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, path)]
    return [f"{path or 'config'}: {messages}"]


def format_validation_error(exc: ValidationError) -> str:
    """Turn marshmallow's nested messages into ``key.path: message`` lines."""
    return "; ".join(_flatten(exc.messages))


def runtime_from_env(env: Mapping[str, str]) -> RuntimeSettings:
    """Read the four environment variables of the contract, with embedded defaults."""
    data_dir = os.path.abspath(env.get("BACKUP_API_DATA_DIR") or "./data")
    return RuntimeSettings(
        config_path=env.get("BACKUP_API_CONFIG") or "./config.yaml",
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir}/backup-api.db",
        broker_url=env.get("CELERY_BROKER_URL") or "filesystem://",
        secret_key=env.get("BACKUP_API_SECRET_KEY") or "",
        secret_key_file=env.get("BACKUP_API_SECRET_KEY_FILE") or "",
    )


def parse_config(text: str, runtime: RuntimeSettings, env: Mapping[str, str]) -> Settings:
    """Validate the YAML ``text`` into :class:`Settings`; raise ``ConfigError`` naming the key."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        # Never str(exc): PyYAML quotes the offending line, password included.
        raise ConfigError(describe_yaml_error(exc, text, runtime.config_path or "config")
                          ) from None
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a mapping")
    raw = expand_env(raw, env)
    try:
        loaded = ConfigSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc
    return Settings(
        runtime=runtime,
        global_=loaded.get("global_") or GlobalSettings(),
        storage=loaded.get("storage") or StorageSettings(),
        databases=tuple(loaded.get("databases") or ()),
        package=loaded.get("package") or PackageSettings(),
        api=loaded.get("api") or ApiSettings(),
        auth=loaded.get("auth") or AuthSettings(),
        notifications=tuple(loaded.get("notifications") or ()),
    )


def load_settings(
    path: str | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from ``path`` (or ``BACKUP_API_CONFIG``) and the environment.

    A missing file is an error when it was named explicitly; the default
    ``./config.yaml`` may be absent, and then every default applies.
    """
    env = os.environ if env is None else env
    runtime = runtime_from_env(env)
    explicit = path or env.get("BACKUP_API_CONFIG")
    config_path = explicit or runtime.config_path
    found = True
    try:
        text = Path(config_path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if explicit:
            raise ConfigError(f"config file not found: {config_path}") from exc
        text, found = "", False
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from exc
    runtime = dataclasses.replace(runtime, config_path=config_path, config_found=found)
    return parse_config(text, runtime, env)


__all__ = ["load_settings", "parse_config", "runtime_from_env"]
