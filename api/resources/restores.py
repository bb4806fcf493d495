"""Verification and restore of backups, and /restores to follow them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import requires
from api.schemas.restores import RestoreQueryArgs, RestoreRequestSchema, RestoreSchema
from api.services import restores as service

blp = Blueprint("restores", __name__, description="Verify and restore backups")


@blp.route("/backups/<backup_id>/verify")
class VerifyBackup(MethodView):
    @blp.response(202, RestoreSchema)
    def post(self, backup_id: str) -> Any:
        """Re-read a backup: recompute its checksums and check the archive is readable."""
        return service.request(backup_id, "verify")


@blp.route("/backups/<backup_id>/restore")
class RestoreBackup(MethodView):
    @requires("admin")
    @blp.arguments(RestoreRequestSchema)
    @blp.response(202, RestoreSchema)
    def post(self, data: dict[str, Any], backup_id: str) -> Any:
        """Restore a backup into its own database or a target marked restore_target."""
        return service.request(backup_id, "restore", data.get("target_database_id"),
                               data["confirm"])


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
