"""Restore and verification payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.backups import STATUSES
from api.schemas.common import DatabaseId, ListQueryArgs


class RestoreRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    target_database_id = DatabaseId(
        metadata={"description": "default: the backup's own database"})
    confirm = ma.fields.Boolean(load_default=False, metadata={
        "description": "required to replace the contents of a non-empty target"})


class RestoreQueryArgs(ListQueryArgs):
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
