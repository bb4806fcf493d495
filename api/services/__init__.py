"""The one call each view makes. Services raise ``abort`` with a readable message."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app

from shared.context import Context


@dataclass
class ApiContext(Context):
    """The process context plus a Celery producer to enqueue work."""

    celery: Celery | None = None


def ctx() -> ApiContext:
    context: ApiContext = current_app.extensions["backup_api"]
    return context
