"""/retention: apply the retention rules now."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas.retention import RetentionResultSchema, RetentionRunSchema
from api.services import abort
from api.services import retention as service

blp = Blueprint("retention", __name__, url_prefix="/retention",
                description="Retention of old backups")


@blp.before_request
def _json_only() -> None:
    """Refuse a body that is not JSON, rather than read it as "no dry_run" and delete.

    ``curl -d '{"dry_run": true}'`` without a Content-Type sends a form; ignoring it
    would apply retention when a preview was asked for.
    """
    if request.content_length and not request.is_json:
        abort(415, message="send the body as JSON (Content-Type: application/json)")


@blp.route("/run")
class RetentionRun(MethodView):
    @blp.arguments(RetentionRunSchema)
    @blp.response(200, RetentionResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Apply retention now; with dry_run, list what would be deleted and why."""
        return service.run(data["dry_run"], data.get("database_id"))
