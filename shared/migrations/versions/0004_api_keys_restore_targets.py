"""api_keys: hashed API keys with scopes; databases.restore_target

Revision ID: 0004_api_keys
Revises: 0002_schedule_slots
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

import shared.models

revision = '0004_api_keys'
down_revision = '0002_schedule_slots'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('created_at', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('key_hash'),
    )
    with op.batch_alter_table('databases') as batch:
        batch.add_column(sa.Column('restore_target', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('databases') as batch:
        batch.drop_column('restore_target')
    op.drop_table('api_keys')
