"""/backups: trigger, list, inspect, delete and download backups."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import requires
from api.schemas.backups import BackupCreateSchema, BackupQueryArgs, BackupSchema
from api.services import backups as service
from api.services.cancel import cancel_backup

blp = Blueprint("backups", __name__, url_prefix="/backups", description="Backups")


@blp.route("")
class Backups(MethodView):
    @blp.arguments(BackupQueryArgs, location="query")
    @blp.response(200, BackupSchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List backups, newest first, filtered by database_id and status."""
        items, total = service.list_backups(filters, pagination_parameters.page,
                                            pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return items

    @blp.arguments(BackupCreateSchema)
    @blp.response(202, BackupSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Take a backup of a database now."""
        return service.create_backup(data["database_id"])


@blp.route("/<backup_id>")
class BackupById(MethodView):
    @blp.response(200, BackupSchema)
    def get(self, backup_id: str) -> Any:
        """Get one backup."""
        return service.get_backup(backup_id)

    @blp.response(204)
    def delete(self, backup_id: str) -> None:
        """Delete a backup: its artifact, its sidecar and its row."""
        service.delete_backup(backup_id)


@blp.route("/<backup_id>/cancel")
class BackupCancel(MethodView):
    @blp.response(202, BackupSchema)
    @blp.alt_response(409, description="The backup is already completed, failed or cancelled")
    def post(self, backup_id: str) -> Any:
        """Cancel a pending backup, or stop a running one (its partial artifact is removed)."""
        return cancel_backup(backup_id)


@blp.route("/<backup_id>/download")
class BackupDownload(MethodView):
    @blp.response(200, {"type": "string", "format": "binary"},
                  content_type="application/octet-stream")
    def get(self, backup_id: str) -> Response:
        """Stream the stored artifact; its MD5 equals the backup's checksum_md5."""
        backup, filename, size, chunks = service.open_download(backup_id)
        return Response(chunks, mimetype="application/octet-stream", headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{backup.checksum_md5}"',
            "X-Checksum-SHA256": backup.checksum_sha256 or "",
        })


@blp.route("/<backup_id>/globals")
class BackupGlobals(MethodView):
    # admin, not read: it describes every role of the server (with options.globals_passwords,
    # their password hashes), not only the database a read key may download.
    @requires("admin")
    @blp.response(200, {"type": "string", "format": "binary"},
                  content_type="application/octet-stream")
    def get(self, backup_id: str) -> Response:
        """Stream the backup's PostgreSQL roles and tablespaces (options.globals).

        The pg_dumpall --globals-only SQL, compressed and encrypted like the dump; 404
        when the backup was taken without options.globals. Needs an admin key.
        """
        filename, size, chunks = service.open_globals(backup_id)
        return Response(chunks, mimetype="application/octet-stream", headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
        })
