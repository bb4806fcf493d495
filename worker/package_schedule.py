"""The package job of the beat scheduler (listed in ``worker.scheduler``):
``package-conf.schedule``, exactly once per slot.

The scheduler claims the slot and calls ``fire`` in the same transaction (see
``worker/scheduler.py``); ``packages.scheduled_for`` is unique as a second guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.context import Context
from shared.models import Database
from shared.packages import new_package
from worker.schedules import AfterCommit, Job, Send


def package_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield the package job when a schedule is set and some database has ``package: true``.

    Slots before the first such database existed never fire, so a new installation
    does not start with a failed "nothing to package".
    """
    schedule = ctx.settings.package.schedule
    if not schedule:
        return
    first = session.scalar(select(func.min(Database.created_at))
                           .where(Database.package.is_(True)))
    if first is None:
        return
    yield Job(key="package", cron=schedule, timezone=ctx.settings.global_.timezone,
              anchor=first, fire=partial(_fire, ctx, send))


def _fire(ctx: Context, send: Send, session: Session, slot: datetime) -> AfterCommit:
    package = new_package(fmt=ctx.settings.package.compression, storage_kind=ctx.storage.kind,
                          trigger="schedule", scheduled_for=slot)
    session.add(package)
    session.flush()
    package_id = package.id
    return lambda: send("packages.run", [package_id])
