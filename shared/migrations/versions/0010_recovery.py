"""Recovery and operations: verification results, source counts, globals, cancellation

Revision ID: 0010_recovery
Revises: 0009_scale_indexes
Create Date: 2026-11-28

- backups.verified_at / verify_status (ok | corrupt | restore_failed) / verify_details:
  the latest verification of the backup (checksums, or a full test restore with counts).
- backups.source_counts: rows per table (documents per collection) in the source when
  the backup was taken, compared with the counts of a test restore.
- backups.globals_key: the storage key of the ``pg_dumpall --globals-only`` artifact
  taken beside the dump when ``options.globals`` is on.
- cancel_requested_at on backups, packages and restores: ``POST .../cancel`` asks, the
  worker running it stops the tool and marks it ``cancelled``.
"""
import sqlalchemy as sa
from alembic import op

import shared.models

revision = '0010_recovery'
down_revision = '0009_scale_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.add_column(sa.Column('verified_at', shared.models.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('verify_status', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('verify_details', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('source_counts', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('globals_key', sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column('cancel_requested_at',
                                   shared.models.UTCDateTime(timezone=True), nullable=True))
    for table in ('packages', 'restores'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('cancel_requested_at',
                                       shared.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ('restores', 'packages'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('cancel_requested_at')
    with op.batch_alter_table('backups') as batch:
        for column in ('cancel_requested_at', 'globals_key', 'source_counts',
                       'verify_details', 'verify_status', 'verified_at'):
            batch.drop_column(column)
