"""packages: at most one pending package at a time (a partial unique index)

Revision ID: 0005_one_pending_package
Revises: 0004_api_keys
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_one_pending_package'
down_revision = '0004_api_keys'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    # The index cannot be built over several pending rows: keep the newest pending
    # package, fail the older ones (each would have packaged the same latest backups).
    op.execute(
        "UPDATE packages SET status = 'failed', finished_at = CURRENT_TIMESTAMP, "
        "error = 'superseded by a newer pending package when at most one pending "
        "package became the rule' "
        "WHERE status = 'pending' AND id <> (SELECT id FROM packages WHERE status = 'pending' "
        "ORDER BY created_at DESC, id DESC LIMIT 1)")
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.create_index('uq_packages_one_pending', ['status'], unique=True,
                              postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_index('uq_packages_one_pending', postgresql_where=PENDING,
                            sqlite_where=PENDING)
