"""Package payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.backups import STATUSES
from api.schemas.common import DatabaseId, ListQueryArgs
from shared.packaging.archive import FORMATS


class PackageCreateSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    database_ids = ma.fields.List(
        DatabaseId(),
        validate=validate.Length(min=1, max=1000, error="must name at least one database"),
        metadata={"description": "default: every database with package: true"})
    format = ma.fields.String(validate=validate.OneOf(FORMATS),
                              metadata={"description": "default: package-conf.compression"})


class PackageQueryArgs(ListQueryArgs):
    status = ma.fields.String(validate=validate.OneOf(STATUSES))


class PackageMemberSchema(ma.Schema):
    database_id = ma.fields.String()
    backup_id = ma.fields.String()


class PackageSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String(validate=validate.OneOf(STATUSES))
    trigger = ma.fields.String()
    format = ma.fields.String()
    created_at = ma.fields.DateTime()
    scheduled_for = ma.fields.DateTime(allow_none=True)
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    size_bytes = ma.fields.Integer(allow_none=True)
    checksum_md5 = ma.fields.String(allow_none=True)
    checksum_sha256 = ma.fields.String(allow_none=True)
    storage = ma.fields.String()
    storage_key = ma.fields.String(allow_none=True)
    database_ids = ma.fields.List(ma.fields.String(), allow_none=True,
                                  metadata={"description": "as requested; null: package: true"})
    backups = ma.fields.List(ma.fields.Nested(PackageMemberSchema))
    missing = ma.fields.List(ma.fields.String(),
                             metadata={"description": "databases without a completed backup"})
    error = ma.fields.String(allow_none=True)
    cancel_requested_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when POST /packages/{id}/cancel asked a running package to stop"})
    encryption = ma.fields.Dict(allow_none=True, metadata={
        "description": 'null, or {"type": "age", "recipients": [...]}: the stored file is an '
                       "age file to these public keys (age -d -i key.txt opens a download)"})
