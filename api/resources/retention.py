"""/retention: apply the retention rules now."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import requires
from api.schemas.retention import RetentionResultSchema, RetentionRunSchema
from api.services import retention as service

blp = Blueprint("retention", __name__, url_prefix="/retention",
                description="Retention of old backups")


@blp.route("/run")
class RetentionRun(MethodView):
    @requires("admin")
    @blp.arguments(RetentionRunSchema, required=False)
    @blp.response(200, RetentionResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """List what retention would delete and why; delete it with {"dry_run": false}.

        No body is a preview. Deleting takes that explicit JSON body: a form post is
        refused (415), so a web page cannot make a visitor's browser delete backups.
        """
        return service.run(data["dry_run"], data.get("database_id"))
