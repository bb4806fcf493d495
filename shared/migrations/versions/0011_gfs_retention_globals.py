"""GFS retention per database and PostgreSQL globals on restore

Revision ID: 0011_gfs_retention_globals
Revises: 0010_recovery
Create Date: 2026-11-28

- databases.keep_daily / keep_weekly / keep_monthly / keep_yearly: the long-term
  (grandfather-father-son) retention overrides; null means the global value applies.
- restores.apply_globals: the restore applies the backup's ``pg_dumpall --globals-only``
  artifact (roles, tablespaces) with psql before ``pg_restore``, and keeps owners.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_gfs_retention_globals'
down_revision = '0010_recovery'
branch_labels = None
depends_on = None

KEEP_COLUMNS = ('keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly')


def upgrade() -> None:
    with op.batch_alter_table('databases') as batch:
        for column in KEEP_COLUMNS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
    with op.batch_alter_table('restores') as batch:
        batch.add_column(sa.Column('apply_globals', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('restores') as batch:
        batch.drop_column('apply_globals')
    with op.batch_alter_table('databases') as batch:
        for column in reversed(KEEP_COLUMNS):
            batch.drop_column(column)
