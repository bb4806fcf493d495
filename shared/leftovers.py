"""Partial artifacts whose deletion failed, deleted later: nothing stays behind an outage.

A writer that fails removes what it wrote (a temporary file; an S3 multipart upload,
aborted). When the storage itself is what failed, say an S3 endpoint that went down
mid-upload, that removal fails too, and so does ``Storage.delete`` afterwards: the open
upload's parts would stay in the bucket, unseen and billed. So whoever gives up on a
partial artifact calls ``discard``; if the storage refuses, the key is recorded in
``storage_leftovers`` and the beat's reaper calls ``retry_leftovers`` until it is gone.
(An S3 bucket lifecycle rule aborting incomplete multipart uploads after a day is a
good second net: docs/operations.md.)
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.context import Context
from shared.errors import StorageError
from shared.models import StorageLeftover, utcnow

log = logging.getLogger(__name__)

# Keys retried per pass, oldest first: a long outage must not make one pass endless.
BATCH = 100


def discard(ctx: Context, key: str) -> bool:
    """Delete the partial artifact ``key``; if the storage refuses, record it for later.

    Return whether it is gone now.
    """
    try:
        ctx.storage.delete_artifact(key)
    except StorageError as exc:
        log.error("could not remove partial artifact %s: %s; it is retried later", key,
                  exc.message)
        try:
            _record(ctx, key, exc.message)
        except Exception:  # noqa: BLE001 - the metadata DB may be down too: log, go on
            log.exception("could not record partial artifact %s for a later deletion", key)
        return False
    return True


def retry_leftovers(ctx: Context) -> list[str]:
    """Delete the recorded leftovers the storage now accepts; return their keys."""
    with ctx.db.session() as session:
        keys = list(session.scalars(select(StorageLeftover.key)
                                    .order_by(StorageLeftover.recorded_at).limit(BATCH)))
    deleted = []
    for key in keys:
        try:
            ctx.storage.delete_artifact(key)
        except StorageError as exc:
            with ctx.db.session() as session:
                session.execute(update(StorageLeftover).where(StorageLeftover.key == key)
                                .values(tries=StorageLeftover.tries + 1,
                                        last_error=exc.message))
            break  # still unreachable, most likely: the others wait for the next pass
        with ctx.db.session() as session:
            session.execute(delete(StorageLeftover).where(StorageLeftover.key == key))
        log.info("removed partial artifact %s, left by a failed or killed writer", key)
        deleted.append(key)
    return deleted


def _record(ctx: Context, key: str, error: str) -> None:
    with ctx.db.session() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(StorageLeftover).values(key=key, recorded_at=utcnow(),
                                                   last_error=error)
        session.execute(statement.on_conflict_do_update(
            index_elements=[StorageLeftover.key], set_={"last_error": error}))
