"""Restore and verification payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.backups import STATUSES
from shared.config import DATABASE_ID_PATTERN


class RestoreRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    target_database_id = ma.fields.String(
        validate=validate.Regexp(DATABASE_ID_PATTERN, error="not a valid database id"),
        metadata={"description": "default: the backup's own database"})
    confirm = ma.fields.Boolean(load_default=False, metadata={
        "description": "required to replace the contents of a non-empty target"})


class RestoreQueryArgs(ma.Schema):
    backup_id = ma.fields.UUID()
    status = ma.fields.String(validate=validate.OneOf(STATUSES))


class RestoreSchema(ma.Schema):
    id = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "verify | restore"})
    backup_id = ma.fields.String()
    database_id = ma.fields.String()
    target_database_id = ma.fields.String(allow_none=True)
    confirm = ma.fields.Boolean()
    status = ma.fields.String()
    created_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    duration_seconds = ma.fields.Float(allow_none=True)
    details = ma.fields.Dict()
    error = ma.fields.String(allow_none=True)
