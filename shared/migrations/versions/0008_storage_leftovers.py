"""storage_leftovers: partial artifacts whose deletion failed, deleted later by the beat

Revision ID: 0008_storage_leftovers
Revises: 0007_database_encryption
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import shared.models

revision = '0008_storage_leftovers'
down_revision = '0007_database_encryption'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'storage_leftovers',
        sa.Column('key', sa.String(length=1024), nullable=False),
        sa.Column('recorded_at', shared.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('tries', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('key'),
    )


def downgrade() -> None:
    op.drop_table('storage_leftovers')
