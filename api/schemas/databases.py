"""Database payloads: what a client may send, and what it gets back (never a password)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import DatabaseId, ListQueryArgs, QueryArgs, anchored
from shared.config import COMPRESSIONS, ENGINES, validate_cron, validate_timezone
from shared.config.encryption import EncryptionSchema
from shared.config.types import keep_count
from shared.engines.options import api_option_errors

MAX_COUNT = 100_000
MAX_DAYS = 36_500


class Text(ma.fields.String):
    """A string without NUL or other control characters (PostgreSQL rejects NUL)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if any(ord(ch) < 32 for ch in text):
            raise ma.ValidationError("must not contain control characters")
        return text


def _network_host(value: str) -> None:
    # libpq reads a leading '/' or '@' as a Unix socket (the worker's own local servers,
    # often with trust or peer authentication) and a ',' as a list of hosts.
    if value.startswith(("/", "@")):
        raise ma.ValidationError("a Unix socket path is config-only: declare the database "
                                 "in config.yaml")
    if "," in value:
        raise ma.ValidationError("must name one host")


class Host(Text):
    """A host name or address: 1 to 255 characters, no spaces, no socket path or list."""

    def __init__(self, **kwargs: Any) -> None:
        rule = anchored(r"^\S+\Z", "must not contain spaces")
        super().__init__(validate=[validate.Length(min=1, max=255), rule["validate"],
                                   _network_host],
                         metadata=rule["metadata"], **kwargs)


def _options_are_scalars(value: dict[str, object]) -> None:
    for key, item in value.items():
        if not isinstance(item, (str, int, float, bool)) or item is None:
            raise ma.ValidationError(f"option {key!r} must be a string, number or boolean")
        if any(ord(ch) < 32 for ch in f"{key}{item}"):
            raise ma.ValidationError(f"option {key!r} must not contain control characters")


def _config_only_identity(_: object) -> None:
    raise ma.ValidationError("is config-only: the secret key stays on the worker; set "
                             "encryption.identity_file in config.yaml")


class DatabaseEncryptionSchema(EncryptionSchema):
    """``encryption`` through the API: recipients (public keys), never ``identity_file``."""

    identity_file = ma.fields.String(load_only=True, validate=_config_only_identity,
                                     metadata={"description": "config-only: always refused"})

    @ma.post_load
    def make(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        recipients = list(dict.fromkeys(data.get("recipients") or ()))
        return {"type": data["type"], **({"recipients": recipients} if recipients else {})}


class _Editable(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = Text(validate=validate.Length(min=1, max=255))
    host = Host()
    port = ma.fields.Integer(validate=validate.Range(min=1, max=65535))
    username = Text(allow_none=True, validate=validate.Length(max=255))
    password = Text(allow_none=True, load_only=True, validate=validate.Length(max=1024))
    database_name = Text(validate=validate.Length(min=1, max=255))
    options = ma.fields.Dict(keys=ma.fields.String(), validate=_options_are_scalars)
    schedule = ma.fields.String(allow_none=True, validate=validate_cron,
                                metadata={"description": "cron; null means the global one"})
    timezone = ma.fields.String(allow_none=True, validate=validate_timezone)
    compression = ma.fields.String(allow_none=True, validate=validate.OneOf(COMPRESSIONS))
    retention_days = ma.fields.Integer(allow_none=True,
                                       validate=validate.Range(min=0, max=MAX_DAYS))
    max_backups = ma.fields.Integer(allow_none=True,
                                    validate=validate.Range(min=0, max=MAX_COUNT))
    min_backups = ma.fields.Integer(allow_none=True,
                                    validate=validate.Range(min=0, max=MAX_COUNT))
    # Long-term (GFS) retention; null: the global value (shared/retention/policy.py).
    keep_daily = keep_count(allow_none=True)
    keep_weekly = keep_count(allow_none=True)
    keep_monthly = keep_count(allow_none=True)
    keep_yearly = keep_count(allow_none=True)
    package = ma.fields.Boolean()
    enabled = ma.fields.Boolean()
    restore_target = ma.fields.Boolean(metadata={
        "description": "whether backups of other databases may be restored over this one"})
    encryption = ma.fields.Nested(DatabaseEncryptionSchema, allow_none=True, metadata={
        "description": '{"type": "age", "recipients": ["age1…"]} encrypts new backups to these '
                       "public keys as well as global.encryption's; null: the global setting"})


class DatabaseCreateSchema(_Editable):
    id = DatabaseId(required=True)
    engine = ma.fields.String(required=True, validate=validate.OneOf(ENGINES))
    host = Host(required=True)
    database_name = Text(required=True, validate=validate.Length(min=1, max=255))

    @ma.validates_schema
    def engine_options(self, data: dict[str, Any], **_: object) -> None:
        # ``data`` is the loaded payload: ``options`` is the Dict field's dict, or absent.
        errors = api_option_errors(str(data["engine"]), data.get("options"))
        if errors:
            raise ma.ValidationError({"options": {k: [v] for k, v in errors.items()}})


class DatabasePatchSchema(_Editable):
    pass


class DatabaseSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    engine = ma.fields.String()
    host = ma.fields.String()
    port = ma.fields.Integer()
    username = ma.fields.String(allow_none=True)
    password_set = ma.fields.Boolean()
    database_name = ma.fields.String()
    options = ma.fields.Dict()
    schedule = ma.fields.String(metadata={"description": "effective cron schedule"})
    timezone = ma.fields.String()
    compression = ma.fields.String()
    retention_days = ma.fields.Integer()
    max_backups = ma.fields.Integer()
    min_backups = ma.fields.Integer()
    keep_daily = ma.fields.Integer(metadata={
        "description": "keep the newest backup of each of the last N days that have one"})
    keep_weekly = ma.fields.Integer(metadata={"description": "… of the last N ISO weeks"})
    keep_monthly = ma.fields.Integer(metadata={"description": "… of the last N months"})
    keep_yearly = ma.fields.Integer(metadata={"description": "… of the last N years"})
    package = ma.fields.Boolean()
    enabled = ma.fields.Boolean()
    restore_target = ma.fields.Boolean()
    encryption = ma.fields.Dict(metadata={
        "description": 'what new backups are encrypted with: {"type": "none"} or '
                       '{"type": "age", "recipients": [...]}'})
    managed_by = ma.fields.String()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class DatabaseQueryArgs(ListQueryArgs):
    """GET /databases takes no filter; only page and page_size."""


class DatabaseDeleteArgs(QueryArgs):
    delete_backups = ma.fields.Boolean(load_default=False)
