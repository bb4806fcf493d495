"""Create, read, delete and download packages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import ctx, delete_stored, enqueue, load_row, open_stored, paginate
from api.services.audit import audit
from shared.errors import Conflict, NotFound
from shared.jobs import PACKAGE_TASK, fail_package, new_package
from shared.models import Database, Package, utcnow


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
    """Commit a pending row, then enqueue it; unknown database ids are ``NotFound``.

    At most one package is pending at a time (``Conflict`` naming it), so a flood of
    requests cannot fill the queue; a partial unique index settles races.
    """
    context = ctx()
    try:
        with context.db.session() as session:
            if database_ids is not None:
                known = set(session.scalars(select(Database.id)
                                            .where(Database.id.in_(database_ids))))
                unknown = [d for d in dict.fromkeys(database_ids) if d not in known]
                if unknown:
                    raise NotFound("database_ids: unknown database "
                                   + ", ".join(repr(d) for d in unknown))
            _refuse_a_second_pending(session)
            package = new_package(context, fmt=fmt, database_ids=database_ids)
            session.add(package)
    except IntegrityError:
        # The one-pending-package index: a request racing this one inserted first.
        with context.db.session() as session:
            _refuse_a_second_pending(session)
        raise Conflict("another package is already pending; wait for it to start") from None
    enqueue(PACKAGE_TASK, package.id, "package", fail_package)
    return package


def _refuse_a_second_pending(session: Session) -> None:
    pending = session.scalar(select(Package).where(Package.status == "pending"))
    if pending is not None:
        raise Conflict(f"package {pending.id} is already pending (created "
                       f"{pending.created_at:%Y-%m-%d %H:%M:%S} UTC); only one package may "
                       "wait at a time: retry when it has started")


def delete_package(package_id: str) -> None:
    context = ctx()
    with context.db.session() as session:
        package = load_row(session, Package, "package", package_id)
        if package.status == "running" and not _abandoned(package):
            raise Conflict(f"package {package_id} is running; stop it with POST "
                           f"/packages/{package_id}/cancel, or wait for it to finish")
        delete_stored("package", package.storage_key)
        session.delete(package)
    audit("package.delete", package_id=package_id)


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
