"""The worker's Celery app: the shared app plus our tasks and the beat scheduler.

Never imports Flask.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from shared.broker import make_celery
from shared.config import Settings
from shared.notify import drain


@signals.setup_logging.connect(weak=False)
def _keep_our_logging(**_: Any) -> None:
    """Leave logging as ``shared.logs.configure`` set it: JSON lines, secrets redacted."""


@signals.worker_process_shutdown.connect(weak=False)
def _send_queued_notifications(**_: Any) -> None:
    """Give the notices this pool process queued a moment to leave (shared/notify)."""
    drain()


def make_worker_app(settings: Settings) -> Celery:
    """Return the app a worker or beat runs: it loads ``worker.tasks``."""
    app = make_celery(settings)
    app.conf.update(
        include=["worker.tasks"],
        # The schedule lives in the metadata DB; see worker/beat/scheduler.py.
        beat_scheduler="worker.beat.scheduler:DatabaseScheduler",
    )
    return app
