"""/databases: the databases to back up."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas.databases import (
    DatabaseCreateSchema,
    DatabaseDeleteArgs,
    DatabasePatchSchema,
    DatabaseQueryArgs,
    DatabaseSchema,
)
from api.services import databases as service

blp = Blueprint("databases", __name__, url_prefix="/databases",
                description="Databases to back up")


@blp.route("")
class Databases(MethodView):
    @blp.arguments(DatabaseQueryArgs, location="query")
    @blp.response(200, DatabaseSchema(many=True))
    @blp.paginate()
    def get(self, _: dict[str, Any], pagination_parameters: Any) -> Any:
        """List registered databases, newest first."""
        items, total = service.list_databases(pagination_parameters.page,
                                              pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return items

    @blp.arguments(DatabaseCreateSchema)
    @blp.response(201, DatabaseSchema)
    @blp.alt_response(409, description="A database with this id exists")
    def post(self, data: dict[str, Any]) -> Any:
        """Register a database."""
        return service.create_database(data)


@blp.route("/<database_id>")
class DatabaseById(MethodView):
    @blp.response(200, DatabaseSchema)
    def get(self, database_id: str) -> Any:
        """Get one database with its effective settings."""
        return service.get_database(database_id)

    @blp.arguments(DatabasePatchSchema)
    @blp.response(200, DatabaseSchema)
    def patch(self, changes: dict[str, Any], database_id: str) -> Any:
        """Change an API-managed database (null resets an override to the global value)."""
        return service.update_database(database_id, changes)

    @blp.arguments(DatabaseDeleteArgs, location="query")
    @blp.response(204)
    def delete(self, args: dict[str, Any], database_id: str) -> None:
        """Remove a database and its schedule; its backups stay unless delete_backups=true."""
        service.delete_database(database_id, args["delete_backups"])
