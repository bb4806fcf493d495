"""Send notices to the channels that want them: from threads, retried, counted, never raising.

``notify`` is called after the row's outcome is committed; it only queues the work and
returns, so a slow or dead receiver never holds up a backup. Each process has a few
daemon threads that deliver, trying each channel up to ``TRIES`` times with a growing
pause (``BACKOFF``) unless the failure is permanent, then count the outcome in the
cluster-wide counters (``backup_api_notifications_total{channel,status}``) and log it.

Why threads rather than a Celery queue: a notification must leave within seconds of the
failure, while a worker's slots may all be taken by dumps that run for hours. The price:
a notice still queued when its process is killed is lost (a worker's warm shutdown
waits ``DRAIN_SECONDS`` for them). The counters and the ``backup_api_backup_overdue``
gauge remain the durable record, for Prometheus alerts (docs/operations.md).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

from sqlalchemy.orm import Session

from shared.config.notifications import NotificationChannel
from shared.context import Context
from shared.logs import event
from shared.metrics.counters import increment, read_series
from shared.metrics.record import NOTIFICATIONS_TOTAL
from shared.notify.notices import Notice
from shared.notify.senders import SENDERS, NotifyError

log = logging.getLogger(__name__)

TRIES = 3
BACKOFF = (2.0, 10.0)  # seconds before the second and the third try
THREADS = 2
QUEUE_LIMIT = 1000
DRAIN_SECONDS = 15.0
STATUSES = ("sent", "failed")


def wants(channels: Sequence[NotificationChannel], event_name: str) -> bool:
    """Return whether any channel listens to ``event_name`` (nothing to build otherwise)."""
    return any(event_name in channel.events for channel in channels)


def notify(ctx: Context, notice: Notice) -> int:
    """Queue ``notice`` for every channel that lists its event; return how many.

    Never raises and never waits for a receiver: the caller's job is done already.
    """
    try:
        channels = [c for c in ctx.settings.notifications if notice.event in c.events]
        for channel in channels:
            if not _dispatcher().submit(partial(deliver, ctx, channel, notice)):
                log.error("notification %s to channel %s dropped: %d are already waiting",
                          notice.event, channel.name, QUEUE_LIMIT,
                          extra=_fields(channel, notice))
                _count(ctx, channel, "failed")
        return len(channels)
    except Exception:  # noqa: BLE001 - a notification must never fail the job announcing it
        log.exception("could not queue notification %s", notice.event)
        return 0


def deliver(ctx: Context, channel: NotificationChannel, notice: Notice,
            sleep: Callable[[float], None] = time.sleep) -> str:
    """Send ``notice`` to ``channel``, retrying; count and log the outcome; return it."""
    send = SENDERS[channel.type]
    problem = ""
    for attempt in range(1, TRIES + 1):
        try:
            send(channel, notice)
        except NotifyError as exc:
            problem = exc.message
            if exc.permanent or attempt == TRIES:
                break
            pause = BACKOFF[min(attempt, len(BACKOFF)) - 1]
            log.warning("notification %s to channel %s failed (try %d of %d): %s; "
                        "trying again in %gs", notice.event, channel.name, attempt, TRIES,
                        problem, pause, extra=_fields(channel, notice))
            sleep(pause)
        except Exception as exc:  # noqa: BLE001 - a bug in a sender must still be counted
            log.exception("notification %s to channel %s failed unexpectedly", notice.event,
                          channel.name, extra=_fields(channel, notice))
            problem = f"internal error: {type(exc).__name__}"
            break
        else:
            log.info("notification %s sent to channel %s", notice.event, channel.name,
                     extra=_fields(channel, notice, tries=attempt))
            _count(ctx, channel, "sent")
            return "sent"
    log.error("notification %s to channel %s failed after %d tr%s: %s", notice.event,
              channel.name, attempt, "y" if attempt == 1 else "ies", problem,
              extra=_fields(channel, notice, tries=attempt))
    _count(ctx, channel, "failed")
    return "failed"


def counts(session: Session, channels: Sequence[NotificationChannel]
           ) -> list[tuple[str, str, float]]:
    """Return (channel, status, value) of every counted series and of every configured
    channel (at 0 until it counts), for the metrics scrape."""
    found = {(labels.get("channel", ""), labels.get("status", "")): value
             for _, labels, value in read_series(session, [NOTIFICATIONS_TOTAL])}
    for channel in channels:
        for status in STATUSES:
            found.setdefault((channel.name, status), 0.0)
    return sorted((name, status, value) for (name, status), value in found.items())


def drain(timeout: float = DRAIN_SECONDS) -> bool:
    """Wait up to ``timeout`` seconds for this process's queued notices; True if none is left."""
    state = _state
    if state is None or state[0] != os.getpid():
        return True
    return state[1].drain(timeout)


def _count(ctx: Context, channel: NotificationChannel, status: str) -> None:
    try:
        with ctx.db.session() as session:
            increment(session, NOTIFICATIONS_TOTAL, {"channel": channel.name, "status": status})
    except Exception as exc:  # noqa: BLE001 - the metadata DB may be down; the log remains
        log.warning("could not count notification to channel %s as %s: %s", channel.name,
                    status, type(exc).__name__)


def _fields(channel: NotificationChannel, notice: Notice, **more: object) -> dict[str, object]:
    return event("notify", channel=channel.name, channel_type=channel.type,
                 notification=notice.event, delivery_id=notice.delivery_id, **more)


class _Dispatcher:
    """A bounded queue and a few daemon threads that run what is put in it."""

    def __init__(self, threads: int = THREADS) -> None:
        self._queue: queue.Queue[Callable[[], object]] = queue.Queue(QUEUE_LIMIT)
        for index in range(threads):
            threading.Thread(target=self._run, name=f"notify-{index}", daemon=True).start()

    def submit(self, job: Callable[[], object]) -> bool:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except Exception:  # noqa: BLE001 - keep the thread for the next one
                log.exception("a notification job failed")
            finally:
                self._queue.task_done()


# The dispatcher of this process: a Celery pool process forked from its parent gets its
# own threads (threads do not survive a fork).
_state: tuple[int, _Dispatcher] | None = None
_lock = threading.Lock()


def _dispatcher() -> _Dispatcher:
    global _state
    with _lock:
        if _state is None or _state[0] != os.getpid():
            _state = (os.getpid(), _Dispatcher())
            atexit.register(drain)
        return _state[1]
