"""The one call each view makes. Services raise ``abort`` with a readable message."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from celery import Celery
from flask import current_app
from flask_smorest import abort as _abort
from sqlalchemy import Select, func, select

from shared.config import DATABASE_ID_PATTERN
from shared.context import Context


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
