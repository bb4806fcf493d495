"""Backup payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import DatabaseId, ListQueryArgs

STATUSES = ("pending", "running", "completed", "failed")


class BackupCreateSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    database_id = DatabaseId(required=True)


class BackupQueryArgs(ListQueryArgs):
    database_id = DatabaseId()
    status = ma.fields.String(validate=validate.OneOf(STATUSES))


class BackupSchema(ma.Schema):
    id = ma.fields.String()
    database_id = ma.fields.String()
    engine = ma.fields.String()
    status = ma.fields.String()
    trigger = ma.fields.String()
    scheduled_for = ma.fields.DateTime(allow_none=True, metadata={
        "description": "the cron slot of a scheduled backup (null when manual)"})
    created_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    duration_seconds = ma.fields.Float(allow_none=True)
    size_bytes = ma.fields.Integer(allow_none=True)
    compression = ma.fields.String()
    checksum_md5 = ma.fields.String(allow_none=True)
    checksum_sha256 = ma.fields.String(allow_none=True)
    storage = ma.fields.String()
    storage_key = ma.fields.String(allow_none=True)
    error = ma.fields.String(allow_none=True)
    attempt = ma.fields.Integer(metadata={
        "description": "1, or the try after workers died mid-backup (global.max_attempts)"})
    encryption = ma.fields.Dict(allow_none=True, metadata={
        "description": 'null, or {"type": "age", "recipients": [...]}: the stored file is an '
                       "age file to these public keys (age -d -i key.txt opens a download)"})
