"""Watch a running job's row for a cancel request (``POST …/cancel``) and stop the job.

A thread reads ``cancel_requested_at`` every ``POLL_EVERY`` seconds; when it is set, the
job's ``Cancellation`` ends the tools it runs (``shared/stopping.py``) and the pipeline
unwinds through its writer, which removes the partial artifact. Polling the row rather
than a broker message: it works with every broker, and a request made while no worker
listened is still seen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from shared.context import Context
from shared.jobs import JobModel
from shared.stopping import Cancellation

log = logging.getLogger(__name__)

# A primary-key read per running job: cheap, and a cancel is seen within about a second.
POLL_EVERY = 0.5


@contextmanager
def watch_cancel(ctx: Context, model: JobModel, row_id: str, what: str
                 ) -> Iterator[Cancellation]:
    """Yield the job's ``Cancellation``, requested once its row asks to cancel."""
    cancellation = Cancellation()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL_EVERY):
            try:
                with ctx.db.session() as session:
                    asked = session.scalar(select(model.cancel_requested_at)
                                           .where(model.id == row_id))
            except Exception as exc:  # noqa: BLE001 - the DB may blink: ask again
                log.warning("could not read the cancel request of %s %s: %s", what, row_id, exc)
                continue
            if asked is not None:
                log.info("%s %s: cancel requested; stopping it", what, row_id)
                cancellation.request(f"cancelled on request at {asked:%Y-%m-%d %H:%M:%S} UTC")
                return

    thread = threading.Thread(target=watch, name=f"cancel-{row_id[:8]}", daemon=True)
    thread.start()
    try:
        yield cancellation
    finally:
        done.set()
        thread.join()


__all__ = ["POLL_EVERY", "watch_cancel"]
