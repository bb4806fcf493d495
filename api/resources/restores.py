"""Verification and restore of backups, and /restores to follow them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import requires
from api.schemas.restores import (
    RestoreQueryArgs,
    RestoreRequestSchema,
    RestoreSchema,
    VerifyRequestSchema,
)
from api.services import restores as service
from api.services.cancel import cancel_restore

blp = Blueprint("restores", __name__, description="Verify and restore backups")


@blp.route("/backups/<backup_id>/verify")
class VerifyBackup(MethodView):
    @blp.arguments(VerifyRequestSchema, required=False)
    @blp.response(202, RestoreSchema)
    def post(self, data: dict[str, Any], backup_id: str) -> Any:
        """Re-read a backup: checksums and a full read; {"test_restore": true} also restores it.

        The outcome goes on the backup too (verified_at, verify_status, verify_details).
        """
        return service.request(backup_id, "verify", test_restore=data["test_restore"])


@blp.route("/backups/<backup_id>/restore")
class RestoreBackup(MethodView):
    @requires("admin")
    @blp.arguments(RestoreRequestSchema)
    @blp.response(202, RestoreSchema)
    def post(self, data: dict[str, Any], backup_id: str) -> Any:
        """Restore a backup into its own database or a target marked restore_target."""
        return service.request(backup_id, "restore", data.get("target_database_id"),
                               data["confirm"], apply_globals=data["globals"])


@blp.route("/restores")
class Restores(MethodView):
    @blp.arguments(RestoreQueryArgs, location="query")
    @blp.response(200, RestoreSchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List verifications and restores, newest first."""
        items, total = service.list_restores(filters, pagination_parameters.page,
                                             pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return items


@blp.route("/restores/<restore_id>")
class RestoreById(MethodView):
    @blp.response(200, RestoreSchema)
    def get(self, restore_id: str) -> Any:
        """Get one verification or restore."""
        return service.get_restore(restore_id)


@blp.route("/restores/<restore_id>/cancel")
class RestoreCancel(MethodView):
    # admin, like starting a restore: a MongoDB restore stopped halfway leaves collections
    # partly replaced, so only who may restore over a database may stop one.
    @requires("admin")
    @blp.response(202, RestoreSchema)
    @blp.alt_response(409, description="It is already completed, failed or cancelled")
    def post(self, restore_id: str) -> Any:
        """Cancel a pending verification or restore, or stop a running one."""
        return cancel_restore(restore_id)
