"""The one call each view makes. Services raise ``abort`` with a readable message."""

from __future__ import annotations

import logging
import posixpath
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from celery import Celery
from flask import current_app
from flask_smorest import abort as _abort
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shared.config import DATABASE_ID_PATTERN
from shared.context import Context
from shared.errors import ArtifactNotFound, StorageError
from shared.models import utcnow

log = logging.getLogger(__name__)


@dataclass
class ApiContext(Context):
    """The process context plus a Celery producer to enqueue work."""

    celery: Celery | None = None


def ctx() -> ApiContext:
    context: ApiContext = current_app.extensions["backup_api"]
    return context


def is_uuid(value: str) -> bool:
    """Tell whether ``value`` can be a backup/package id (anything else is simply absent)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def is_database_id(value: str) -> bool:
    return re.fullmatch(DATABASE_ID_PATTERN, value) is not None


def abort(code: int, message: str) -> NoReturn:
    """Answer ``code`` with a JSON error carrying ``message`` (never returns)."""
    _abort(code, message=message)
    raise AssertionError("unreachable")  # flask_smorest.abort always raises


# Past this many rows no page can hold anything; answering empty avoids an OFFSET
# overflow in the database for absurd page numbers.
_MAX_OFFSET = 2**53


def paginate(query: Select[Any], page: int, page_size: int) -> tuple[list[Any], int]:
    """Return one page of ``query`` (already ordered) and the total row count."""
    with ctx().db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        offset = (page - 1) * page_size
        if offset >= min(total, _MAX_OFFSET):
            return [], total
        rows: list[Any] = list(session.scalars(query.offset(offset).limit(page_size)))
        return rows, total


def enqueue(task: str, row_id: str, what: str, mark_failed: Callable[[str], None]) -> None:
    """Send ``task`` for a committed row; if the broker refuses, fail the row and answer 503.

    The row is recorded failed (never left pending forever) with a reason saying so.
    """
    context = ctx()
    try:
        assert context.celery is not None
        context.celery.send_task(task, args=[row_id])
    except Exception as exc:  # noqa: BLE001 - the broker's errors vary by transport
        log.error("could not enqueue %s %s: %s", what, row_id, exc)
        mark_failed(f"could not enqueue the {what}: the broker is unreachable")
        abort(503, message=f"the broker is unreachable; the {what} was recorded as failed")


STREAM_CHUNK = 256 * 1024


def open_stored(what: str, row_id: str, status: str, key: str | None
                ) -> tuple[str, int, Iterator[bytes]]:
    """Return a file name, the size and a chunk iterator over a completed row's artifact.

    409 unless the row is completed; 410 when its artifact vanished from storage.
    """
    if status != "completed" or not key:
        abort(409, message=f"{what} {row_id} is {status}; only a completed {what} can be "
                           "downloaded")
    storage = ctx().storage
    try:
        size = storage.size(key)
        handle = storage.open(key)
    except ArtifactNotFound:
        abort(410, message=f"the file of {what} {row_id} is missing from storage")
    except StorageError as exc:
        abort(502, message=exc.message)

    def chunks() -> Iterator[bytes]:
        with handle:
            while data := handle.read(STREAM_CHUNK):
                yield data

    return posixpath.basename(key), size, chunks()


def delete_stored(what: str, key: str | None) -> None:
    """Delete an artifact and its sidecar; a storage failure is a 502 naming it."""
    if not key:
        return
    try:
        ctx().storage.delete_artifact(key)
    except StorageError as exc:
        abort(502, message=f"could not delete the {what}: {exc.message}")


Row = TypeVar("Row")


def load_row(session: Session, model: type[Row], what: str, row_id: str) -> Row:
    """Return the ``model`` row with UUID ``row_id``, or answer 404 naming ``what``."""
    row = session.get(model, row_id) if is_uuid(row_id) else None
    if row is None:
        abort(404, message=f"{what} {row_id!r} not found")
    return row


def fail_pending(model: type[Any], row_id: str, message: str,
                 count: Callable[[Session, Any], None] | None = None) -> None:
    """Mark a still-pending row failed with ``message``; ``count`` it in the same transaction."""
    with ctx().db.session() as session:
        row = session.get(model, row_id)
        if row is not None and row.status == "pending":
            row.status, row.error, row.finished_at = "failed", message, utcnow()
            if count is not None:
                count(session, row)
