"""Retention payloads."""

from __future__ import annotations

import marshmallow as ma

from api.schemas.common import DatabaseId


class RetentionRunSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    # True unless the body says false: a POST without a body (or one a browser was
    # tricked into sending) previews, it never deletes.
    dry_run = ma.fields.Boolean(load_default=True, metadata={
        "description": "default true: list what would be deleted and why, delete nothing;"
                       " false deletes"})
    database_id = DatabaseId(metadata={
        "description": "only this database (default: every registered database)"})


class RemovalSchema(ma.Schema):
    backup_id = ma.fields.String()
    database_id = ma.fields.String()
    status = ma.fields.String()
    created_at = ma.fields.DateTime()
    reason = ma.fields.String()


class RetentionErrorSchema(RemovalSchema):
    error = ma.fields.String()


class RetentionResultSchema(ma.Schema):
    dry_run = ma.fields.Boolean()
    count = ma.fields.Integer(metadata={"description": "backups deleted (or to delete)"})
    backups = ma.fields.List(ma.fields.Nested(RemovalSchema))
    errors = ma.fields.List(ma.fields.Nested(RetentionErrorSchema), metadata={
        "description": "backups whose artifact could not be deleted; kept for the next run"})
    kept = ma.fields.List(ma.fields.Nested(RemovalSchema), metadata={
        "description": "dry run only: every finished backup that stays, with the rule that "
                       'keeps it ("kept: within retention_days=14", "kept: monthly 2026-10")'})
