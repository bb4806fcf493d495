"""How the beat sends its messages: one by one, or a batch at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from celery import Celery

# Wraps the sending of one batch's messages (``CelerySender.batch``: one Redis round trip).
Batching = Callable[[], AbstractContextManager[object]]


class CelerySender:
    """Send tasks by name through the beat's Celery app (a ``Send``).

    Inside ``batch()`` the messages are buffered and written at its end in one Redis
    pipeline (kombu's ``Producer.batch``): a third of the CPU of one round trip each,
    which is most of a pass that fires 1,000 backups. Other transports send at once.
    A batch whose write fails raises, and none of its buffered messages went out.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._producer: Any = None

    def __call__(self, task: str, args: list[str]) -> None:
        self.app.send_task(task, args=args, producer=self._producer)

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self.app.producer_or_acquire() as producer, cast(Any, producer).batch():
            self._producer = producer
            try:
                yield
            finally:
                self._producer = None
