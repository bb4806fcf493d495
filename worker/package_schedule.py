"""The hook the beat scheduler calls for ``package-conf.schedule``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from shared.context import Context
from shared.packages import new_package

log = logging.getLogger(__name__)


def create_scheduled_package(ctx: Context, slot: datetime,
                             enqueue: Callable[[str], object] | None = None) -> str | None:
    """Create the package of schedule slot ``slot`` once; return its id, or None if taken.

    ``packages.scheduled_for`` is unique, so of several beats (or a retried tick)
    racing for one slot exactly one inserts; the others get ``None``. The row is
    committed before it is enqueued so the worker always finds it.
    """
    try:
        with ctx.db.session() as session:
            package = new_package(fmt=ctx.settings.package.compression,
                                  storage_kind=ctx.storage.kind, trigger="schedule",
                                  scheduled_for=slot)
            session.add(package)
    except IntegrityError:
        log.info("package of slot %s already exists", slot.isoformat())
        return None
    if enqueue is None:
        from worker.tasks import run_package

        run_package.delay(package.id)
    else:
        enqueue(package.id)
    return package.id
