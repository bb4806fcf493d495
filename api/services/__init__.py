"""The one call each view makes. Services raise ``abort`` with a readable message."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import NoReturn

from celery import Celery
from flask import current_app
from flask_smorest import abort as _abort

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
