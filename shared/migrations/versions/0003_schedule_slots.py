"""schedule_slots: the latest cron slot each periodic job fired for

Revision ID: 0002_schedule_slots (file 0003: the revision id predates the renumbering)
Revises: 0002_restores
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

import shared.models

revision = '0002_schedule_slots'
down_revision = '0002_restores'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedule_slots',
    sa.Column('job', sa.String(length=128), nullable=False),
    sa.Column('last_slot', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job')
    )


def downgrade() -> None:
    op.drop_table('schedule_slots')
