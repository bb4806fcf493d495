"""backups/packages.encryption, backups.attempt, an index for per-database listings

Revision ID: 0006_encryption_attempts
Revises: 0005_one_pending_package
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_encryption_attempts'
down_revision = '0005_one_pending_package'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        # {"type": "age", "recipients": [...]} when the artifact is encrypted, else null.
        batch.add_column(sa.Column('encryption', sa.JSON(), nullable=True))
        # 1 for the first try; a backup interrupted by a worker's death is tried again.
        batch.add_column(sa.Column('attempt', sa.Integer(), nullable=False,
                                   server_default='1'))
    with op.batch_alter_table('packages') as batch:
        batch.add_column(sa.Column('encryption', sa.JSON(), nullable=True))
    op.create_index('ix_backups_database_created', 'backups', ['database_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_backups_database_created', table_name='backups')
    with op.batch_alter_table('packages') as batch:
        batch.drop_column('encryption')
    with op.batch_alter_table('backups') as batch:
        batch.drop_column('attempt')
        batch.drop_column('encryption')
