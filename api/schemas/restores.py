"""Restore and verification payloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from marshmallow import validate

from api.schemas.backups import STATUSES
from api.schemas.common import DatabaseId, ListQueryArgs


class RestoreRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    target_database_id = DatabaseId(metadata={
        "description": "default: the backup's own database; another database must be "
                       "marked restore_target"})
    confirm = ma.fields.String(load_default=None, validate=validate.Length(max=63), metadata={
        "description": "the target database's id: required to replace the contents of a "
                       "non-empty target"})
    globals = ma.fields.Boolean(load_default=False, metadata={
        "description": "PostgreSQL backups taken with options.globals: first create the "
                       "backup's roles and tablespaces on the target's server (psql; those it "
                       "has already are left as they are), then restore keeping owners and "
                       "grants"})

    @ma.pre_load
    def confirm_names_the_target(self, data: Any, **_: Any) -> Any:
        # `true` confirmed any target once; now the id must be typed out. `false` still
        # means what it always meant: no confirmation.
        if isinstance(data, Mapping) and isinstance(data.get("confirm"), bool):
            if data["confirm"]:
                raise ma.ValidationError(
                    'send the target database id, e.g. "confirm": "shop" (true is no longer '
                    "accepted)", field_name="confirm")
            data = {key: value for key, value in data.items() if key != "confirm"}
        return data


class VerifyRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    test_restore = ma.fields.Boolean(load_default=False, metadata={
        "description": "default false: checksums and the engine's full read. true: also "
                       "restore into a scratch database (created, then dropped) and compare "
                       "each table's row count with the source's at backup time"})


class RestoreQueryArgs(ListQueryArgs):
    backup_id = ma.fields.UUID()
    status = ma.fields.String(validate=validate.OneOf(STATUSES))


class RestoreSchema(ma.Schema):
    id = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "verify | restore"})
    backup_id = ma.fields.String()
    database_id = ma.fields.String()
    target_database_id = ma.fields.String(allow_none=True)
    confirm = ma.fields.Boolean(metadata={
        "description": "whether the request's confirm named the target"})
    globals = ma.fields.Boolean(attribute="apply_globals", metadata={
        "description": "whether the restore applies the backup's roles and tablespaces first"})
    status = ma.fields.String(validate=validate.OneOf(STATUSES))
    created_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    duration_seconds = ma.fields.Float(allow_none=True)
    details = ma.fields.Dict()
    error = ma.fields.String(allow_none=True)
    cancel_requested_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when POST /restores/{id}/cancel asked a running one to stop"})
