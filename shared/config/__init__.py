"""Configuration: ``types`` (the typed settings and value checks), ``load`` (YAML, the
environment and validation into those types). Import from here."""

from shared.config.load import load_settings, parse_config, runtime_from_env
from shared.config.types import (
    COMPRESSIONS,
    DATABASE_ID_PATTERN,
    DEFAULT_PORTS,
    ENGINES,
    ID_ERROR,
    KEEP_KEYS,
    KEY_NAME_ERROR,
    KEY_NAME_PATTERN,
    PACKAGE_FORMATS,
    SCOPES,
    ApiSettings,
    AuthSettings,
    ConfigKey,
    DatabaseSpec,
    EncryptionSettings,
    GlobalSettings,
    PackageSettings,
    RuntimeSettings,
    S3Settings,
    ScratchServer,
    Settings,
    StorageSettings,
    VerifySettings,
    validate_cron,
    validate_timezone,
)

__all__ = [
    "COMPRESSIONS", "DATABASE_ID_PATTERN", "DEFAULT_PORTS", "ENGINES", "ID_ERROR", "KEEP_KEYS",
    "KEY_NAME_ERROR", "KEY_NAME_PATTERN", "PACKAGE_FORMATS", "SCOPES", "ApiSettings",
    "AuthSettings", "ConfigKey", "DatabaseSpec", "EncryptionSettings", "GlobalSettings",
    "PackageSettings", "RuntimeSettings", "S3Settings", "ScratchServer", "Settings",
    "StorageSettings", "VerifySettings",
    "load_settings", "parse_config", "runtime_from_env", "validate_cron", "validate_timezone",
]
