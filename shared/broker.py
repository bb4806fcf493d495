"""The Celery application both sides use: the API to send jobs, the worker to run them.

The row in the metadata DB, not the message, is the record of a job: a task only
carries an id and runs only a row still pending (idempotent), and the beat's reaper
re-sends pending rows whose message was lost and retries backups whose worker died
(worker/beat/reaper.py). So messages are acknowledged as a worker starts them, and a
worker fetches one only when it has a free slot (``worker_disable_prefetch``, Redis):
it never holds an unacknowledged message. That is also what keeps a worker alive when
Redis goes away: Celery 5.7.0 closes the lost connection after detaching its
transport, the Redis channel then tries to restore the unacknowledged messages through
it, and the worker dies with ``Unrecoverable error: AttributeError("'NoneType' object
has no attribute 'hostname'")`` (exit code 0). With nothing unacknowledged there is
nothing to restore, and the worker reconnects. (``backup-api worker`` also restarts a
worker that exits for any other reason: worker/supervisor.py.)

Each kind of job has its own queue (``backups``, ``packages``, ``restores``,
``retention``): whoever sends a task by name, the API, the beat or the reaper, it
lands in its kind's queue.

The worker adds its tasks and the beat scheduler to this app (``worker.celery_app``);
the API only sends tasks by name (``shared.jobs``), so it never imports the worker.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from shared.config import Settings
from shared.jobs import TASK_QUEUES

# Every queue, in the order a worker with no ``--queues`` consumes them (round robin).
QUEUES = tuple(dict.fromkeys(TASK_QUEUES.values()))


def broker_options(settings: Settings) -> dict[str, Any]:
    """Return the transport options: the embedded filesystem broker's folders, or Redis's."""
    url = settings.runtime.broker_url
    if url.startswith("filesystem://"):
        folder = os.path.join(settings.runtime.data_dir, "broker")
        # 0700: messages name backups and databases (the umask of 077 makes them 0600).
        os.makedirs(os.path.join(folder, "processed"), mode=0o700, exist_ok=True)
        # control_folder defaults to ./control in the working directory: keep it with the
        # rest of the broker's files.
        return {"data_folder_in": folder, "data_folder_out": folder,
                "processed_folder": os.path.join(folder, "processed"),
                "control_folder": os.path.join(folder, "control"),
                "store_processed": False}
    return {"visibility_timeout": settings.global_.visibility_timeout}


def make_celery(settings: Settings) -> Celery:
    """Return a Celery app for ``settings`` that can send and (with tasks added) run jobs."""
    app = Celery("backup_api", broker=settings.runtime.broker_url)
    redis = settings.runtime.broker_url.startswith(("redis://", "rediss://"))
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # a broker down for an hour is waited for
        # See the module docstring: early acknowledgement, no prefetch beyond free slots.
        task_acks_late=False,
        # Cancels only late-acknowledged tasks on a lost connection: none of ours. Set,
        # as Celery 6 will, to silence its deprecation warning on each reconnection.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_ignore_result=True,
        task_soft_time_limit=settings.global_.backup_time_limit,
        task_time_limit=settings.global_.hard_time_limit,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=redis,  # only Redis supports it (Celery warns otherwise)
        # One queue per kind of job (see shared.jobs.TASK_QUEUES). A worker takes from its
        # queues in turn, so a backup waits for at most one running job to end, never for
        # a flood of another kind to drain.
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_routes={task: {"queue": queue} for task, queue in TASK_QUEUES.items()},
        worker_concurrency=settings.global_.max_parallel_jobs,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
    )
    return app
