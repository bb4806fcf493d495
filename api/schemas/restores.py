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
    status = ma.fields.String()
    created_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    duration_seconds = ma.fields.Float(allow_none=True)
    details = ma.fields.Dict()
    error = ma.fields.String(allow_none=True)
