"""/retention: apply the retention rules now."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas.retention import RetentionResultSchema, RetentionRunSchema
from api.services import retention as service

blp = Blueprint("retention", __name__, url_prefix="/retention",
                description="Retention of old backups")


@blp.route("/run")
class RetentionRun(MethodView):
    @blp.arguments(RetentionRunSchema)
    @blp.response(200, RetentionResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Apply retention now; with dry_run, list what would be deleted and why."""
        return service.run(data["dry_run"], data.get("database_id"))
