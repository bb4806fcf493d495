"""/packages: bundle the latest backups of several databases, list, download, delete."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas.packages import PackageCreateSchema, PackageQueryArgs, PackageSchema
from api.services import packages as service
from api.services.cancel import cancel_package
from shared.packaging.archive import MEDIA_TYPES

blp = Blueprint("packages", __name__, url_prefix="/packages",
                description="Packages: the latest backups of several databases in one file")


@blp.route("")
class Packages(MethodView):
    @blp.arguments(PackageQueryArgs, location="query")
    @blp.response(200, PackageSchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List packages, newest first, optionally filtered by status."""
        items, total = service.list_packages(filters, pagination_parameters.page,
                                             pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return items


@blp.route("/create")
class PackageCreate(MethodView):
    @blp.arguments(PackageCreateSchema, required=False)
    @blp.response(202, PackageSchema)
    @blp.alt_response(404, description="A database in database_ids is unknown")
    def post(self, data: dict[str, Any]) -> Any:
        """Build a package now (of database_ids, or of every database with package: true)."""
        return service.create_package(data.get("database_ids"), data.get("format"))


@blp.route("/<package_id>")
class PackageById(MethodView):
    @blp.response(200, PackageSchema)
    def get(self, package_id: str) -> Any:
        """Get one package."""
        return service.get_package(package_id)

    @blp.response(204)
    def delete(self, package_id: str) -> None:
        """Delete a package: its file, its sidecar and its row."""
        service.delete_package(package_id)


@blp.route("/<package_id>/cancel")
class PackageCancel(MethodView):
    @blp.response(202, PackageSchema)
    @blp.alt_response(409, description="The package is already completed, failed or cancelled")
    def post(self, package_id: str) -> Any:
        """Cancel a pending package, or stop a running one (its partial file is removed)."""
        return cancel_package(package_id)


@blp.route("/<package_id>/download")
class PackageDownload(MethodView):
    @blp.response(200, {"type": "string", "format": "binary"},
                  content_type="application/octet-stream")
    def get(self, package_id: str) -> Response:
        """Stream the package; its MD5 equals the package's checksum_md5."""
        package, filename, size, chunks = service.open_download(package_id)
        # An encrypted package is an age file, whatever archive it holds.
        mimetype = ("application/octet-stream" if package.encryption
                    else MEDIA_TYPES.get(package.format))
        return Response(chunks, mimetype=mimetype, headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{package.checksum_md5}"',
            "X-Checksum-SHA256": package.checksum_sha256 or "",
        })
