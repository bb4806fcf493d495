"""Backup payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import DatabaseId, ListQueryArgs

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
VERIFY_STATUSES = ("ok", "corrupt", "restore_failed")


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
    status = ma.fields.String(validate=validate.OneOf(STATUSES))
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
    globals_key = ma.fields.String(allow_none=True, metadata={
        "description": "PostgreSQL with options.globals: the roles and tablespaces taken beside "
                       "the dump (GET /backups/{id}/globals); null otherwise"})
    error = ma.fields.String(allow_none=True)
    cancel_requested_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when POST /backups/{id}/cancel asked a running backup to stop"})
    attempt = ma.fields.Integer(metadata={
        "description": "1, or the try after workers died mid-backup (global.max_attempts)"})
    verified_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when the latest verification of this backup ended (null: never)"})
    verify_status = ma.fields.String(allow_none=True, validate=validate.OneOf(VERIFY_STATUSES),
                                     metadata={"description": "ok | corrupt | restore_failed"})
    verify_details = ma.fields.Dict(allow_none=True, metadata={
        "description": "what the latest verification checked: checksums, and for a test "
                       "restore the scratch database and each table's rows at backup time "
                       '(source) and restored: {"tables": {"public.orders": {"source": 2000, '
                       '"restored": 2000}}, "errors": [...]}'})
    encryption = ma.fields.Dict(allow_none=True, metadata={
        "description": 'null, or {"type": "age", "recipients": [...]}: the stored file is an '
                       "age file to these public keys (age -d -i key.txt opens a download)"})
