"""The one call each view makes.

Services speak the domain: they raise ``shared.errors`` (``NotFound``, ``Conflict``...)
with a readable message, and ``api.errors`` alone turns those into HTTP answers. The
rules they share with the beat and the workers live in ``shared.jobs``.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery
from flask import current_app
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shared import jobs
from shared.config import DATABASE_ID_PATTERN
from shared.context import Context
from shared.errors import ArtifactNotFound, Conflict, Gone, NotFound, StorageError, Unavailable


@dataclass
class ApiContext(Context):
    """The process context plus a Celery producer to enqueue work."""

    celery: Celery | None = None

    def send(self, task: str, args: list[str]) -> None:
        """Send ``task`` by name (the API never imports the worker)."""
        if self.celery is None:
            raise RuntimeError("this process has no broker")
        self.celery.send_task(task, args=args)


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


# Past this many rows no page can hold anything; answering empty avoids an OFFSET
# overflow in the database for absurd page numbers.
_MAX_OFFSET = 2**53


def paginate(query: Select[Any], page: int, page_size: int) -> tuple[list[Any], int]:
    """Return one page of ``query`` (already ordered) and the total row count."""
    with ctx().db.session() as session:
        # Counted without the ORDER BY: sorting every row to count them costs 0.2 s at 100,000.
        total = session.scalar(select(func.count()).select_from(
            query.order_by(None).subquery())) or 0
        offset = (page - 1) * page_size
        if offset >= min(total, _MAX_OFFSET):
            return [], total
        rows: list[Any] = list(session.scalars(query.offset(offset).limit(page_size)))
        return rows, total


def enqueue(task: str, row_id: str, what: str, fail: jobs.FailRow) -> None:
    """Send ``task`` for a committed row; if the broker refuses, the row is failed: Unavailable.

    See ``shared.jobs.enqueue``: the beat enqueues its jobs the same way.
    """
    context = ctx()
    if not jobs.enqueue(context, context.send, task, row_id, what, fail):
        raise Unavailable(f"the broker is unreachable; the {what} was recorded as failed")


STREAM_CHUNK = 256 * 1024


def open_stored(what: str, row_id: str, status: str, key: str | None
                ) -> tuple[str, int, Iterator[bytes]]:
    """Return a file name, the size and a chunk iterator over a completed row's artifact.

    ``Conflict`` unless the row is completed; ``Gone`` when its artifact vanished from
    storage; any other ``StorageError`` as the storage raised it.
    """
    if status != "completed" or not key:
        raise Conflict(f"{what} {row_id} is {status}; only a completed {what} can be "
                       "downloaded")
    storage = ctx().storage
    try:
        size = storage.size(key)
        handle = storage.open(key)
    except ArtifactNotFound:
        raise Gone(f"the file of {what} {row_id} is missing from storage") from None

    def chunks() -> Iterator[bytes]:
        with handle:
            while data := handle.read(STREAM_CHUNK):
                yield data

    return posixpath.basename(key), size, chunks()


def delete_stored(what: str, key: str | None) -> None:
    """Delete an artifact and its sidecar; a ``StorageError`` says which ``what`` failed."""
    if not key:
        return
    try:
        ctx().storage.delete_artifact(key)
    except StorageError as exc:
        raise StorageError(f"could not delete the {what}: {exc.message}") from exc


Row = TypeVar("Row")


def load_row(session: Session, model: type[Row], what: str, row_id: str) -> Row:
    """Return the ``model`` row with UUID ``row_id``; ``NotFound`` naming ``what`` if none."""
    row = session.get(model, row_id) if is_uuid(row_id) else None
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found")
    return row

