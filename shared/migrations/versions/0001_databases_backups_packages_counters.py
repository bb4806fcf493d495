"""databases, backups, packages, counters

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

import shared.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('database_id', sa.String(length=63), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('scheduled_for', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('compression', sa.String(length=16), nullable=False),
    sa.Column('checksum_md5', sa.String(length=32), nullable=True),
    sa.Column('checksum_sha256', sa.String(length=64), nullable=True),
    sa.Column('storage', sa.String(length=16), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backups_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_database_id'), ['database_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_status'), ['status'], unique=False)
        batch_op.create_index('uq_backups_one_active_per_database', ['database_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'running')"), sqlite_where=sa.text("status IN ('pending', 'running')"))
        batch_op.create_index('uq_backups_schedule_slot', ['database_id', 'scheduled_for'], unique=True)

    op.create_table('counters',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('labels', sa.String(length=512), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', 'labels')
    )
    op.create_table('databases',
    sa.Column('id', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=True),
    sa.Column('password', sa.Text(), nullable=True),
    sa.Column('database_name', sa.String(length=255), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('schedule', sa.String(length=100), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('compression', sa.String(length=16), nullable=True),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('max_backups', sa.Integer(), nullable=True),
    sa.Column('min_backups', sa.Integer(), nullable=True),
    sa.Column('package', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('managed_by', sa.String(length=16), nullable=False),
    sa.Column('created_at', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('packages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('scheduled_for', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', shared.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('checksum_md5', sa.String(length=32), nullable=True),
    sa.Column('checksum_sha256', sa.String(length=64), nullable=True),
    sa.Column('storage', sa.String(length=16), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=True),
    sa.Column('database_ids', sa.JSON(), nullable=True),
    sa.Column('backups', sa.JSON(), nullable=False),
    sa.Column('missing', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scheduled_for')
    )
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_packages_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_packages_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_packages_status'))
        batch_op.drop_index(batch_op.f('ix_packages_created_at'))

    op.drop_table('packages')
    op.drop_table('databases')
    op.drop_table('counters')
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_index('uq_backups_schedule_slot')
        batch_op.drop_index('uq_backups_one_active_per_database', postgresql_where=sa.text("status IN ('pending', 'running')"), sqlite_where=sa.text("status IN ('pending', 'running')"))
        batch_op.drop_index(batch_op.f('ix_backups_status'))
        batch_op.drop_index(batch_op.f('ix_backups_database_id'))
        batch_op.drop_index(batch_op.f('ix_backups_created_at'))

    op.drop_table('backups')
