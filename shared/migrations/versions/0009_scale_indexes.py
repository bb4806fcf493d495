"""Indexes for 100,000 backups: the listings in their order, and the metrics' aggregates

Revision ID: 0009_scale_indexes
Revises: 0008_storage_leftovers
Create Date: 2026-11-28

Measured by bench/many_backups.py (docs/benchmarks.md):
- ``GET /backups`` lists newest first (created_at, id): (created_at, id) serves the
  unfiltered pages, (status, created_at, id) the ``status=`` ones, both as index-only
  scans for deep pages; (database_id, created_at) from 0006 serves ``database_id=``.
- ``/metrics`` takes the latest completed backup of each database: (status,
  database_id, finished_at) answers it from the index alone.
"""
from alembic import op

revision = '0009_scale_indexes'
down_revision = '0008_storage_leftovers'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_backups_created_id': ['created_at', 'id'],
    'ix_backups_status_created_id': ['status', 'created_at', 'id'],
    'ix_backups_status_database_finished': ['status', 'database_id', 'finished_at'],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, 'backups', columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name='backups')
