"""Package retention: apply ``package-conf.retention_days`` and ``max_packages``."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select

from shared.context import Context
from shared.models import Package, utcnow
from shared.packages import Expired, packages_to_delete

log = logging.getLogger(__name__)


def apply_package_retention(ctx: Context, now: datetime | None = None,
                            dry_run: bool = False) -> list[Expired]:
    """Delete the packages retention no longer keeps (artifact, sidecar, row); return them.

    Storage goes first: if deleting the artifact fails, the row stays and the next
    run tries again, so no artifact is ever orphaned without its row.
    """
    conf = ctx.settings.package
    with ctx.db.session() as session:
        rows = session.scalars(select(Package).where(
            Package.status.in_(("completed", "failed")))).all()
        expired = packages_to_delete(rows, now or utcnow(), conf.retention_days,
                                     conf.max_packages)
        if dry_run:
            return expired
        by_id = {row.id: row for row in rows}
        for item in expired:
            row = by_id[item.package_id]
            if row.storage_key:
                ctx.storage.delete_artifact(row.storage_key)
            # A statement, not session.delete: a concurrent run may have removed it.
            session.execute(delete(Package).where(Package.id == row.id))
            log.info("retention removed package %s: %s", row.id, item.reason)
    return expired
