"""Create, read, delete and download packages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import (
    abort,
    ctx,
    delete_stored,
    enqueue,
    fail_pending,
    load_row,
    open_stored,
    paginate,
)
from shared.jobs import PACKAGE_TASK
from shared.metrics.counters import increment
from shared.metrics.record import PACKAGES_TOTAL
from shared.models import Database, Package, utcnow
from shared.packaging.selection import new_package

log = logging.getLogger(__name__)
STREAM_CHUNK = 256 * 1024


def list_packages(filters: dict[str, Any], page: int,
                  page_size: int) -> tuple[list[Package], int]:
    query = select(Package)
    if filters.get("status"):
        query = query.where(Package.status == filters["status"])
    return paginate(query.order_by(Package.created_at.desc(), Package.id.desc()), page,
                    page_size)


def get_package(package_id: str) -> Package:
    with ctx().db.session() as session:
        return load_row(session, Package, "package", package_id)


def create_package(database_ids: list[str] | None, fmt: str | None) -> Package:
    """Commit a pending row, then enqueue it; unknown database ids answer 404."""
    context = ctx()
    with context.db.session() as session:
        if database_ids is not None:
            known = set(session.scalars(select(Database.id)
                                        .where(Database.id.in_(database_ids))))
            unknown = [d for d in dict.fromkeys(database_ids) if d not in known]
            if unknown:
                abort(404, message="database_ids: unknown database "
                                   + ", ".join(repr(d) for d in unknown))
        package = new_package(fmt=fmt or context.settings.package.compression,
                              storage_kind=context.storage.kind, database_ids=database_ids)
        session.add(package)
    enqueue(PACKAGE_TASK, package.id, "package",
            partial(fail_pending, Package, package.id, count=_count_failed))
    return package


def delete_package(package_id: str) -> None:
    context = ctx()
    with context.db.session() as session:
        package = load_row(session, Package, "package", package_id)
        if package.status == "running" and not _abandoned(package):
            abort(409, message=f"package {package_id} is running; wait for it to finish")
        delete_stored("package", package.storage_key)
        session.delete(package)


def open_download(package_id: str) -> tuple[Package, str, int, Iterator[bytes]]:
    """Return the row, a file name, the size, and a chunk iterator over the package."""
    package = get_package(package_id)
    return (package, *open_stored("package", package_id, package.status, package.storage_key))


def _abandoned(package: Package) -> bool:
    """Tell whether a running package is past Celery's hard time limit, so no worker
    can still be building it (its worker died): it may then be deleted."""
    limit = ctx().settings.global_.hard_time_limit
    started = package.started_at or package.created_at
    return started < utcnow() - timedelta(seconds=limit)


def _count_failed(session: Session, _: Package) -> None:
    increment(session, PACKAGES_TOTAL, {"status": "failed"})
