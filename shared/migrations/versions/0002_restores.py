"""restores: checksum verifications and restores of backups

Revision ID: 0002_restores
Revises: 0001
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

import shared.models

revision = "0002_restores"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "restores",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("backup_id", sa.String(length=36), nullable=False),
        sa.Column("database_id", sa.String(length=63), nullable=False),
        sa.Column("target_database_id", sa.String(length=63), nullable=True),
        sa.Column("confirm", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", shared.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", shared.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", shared.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("restores") as batch_op:
        batch_op.create_index("ix_restores_backup_id", ["backup_id"])
        batch_op.create_index("ix_restores_status", ["status"])
        batch_op.create_index("ix_restores_created_at", ["created_at"])


def downgrade() -> None:
    op.drop_table("restores")
