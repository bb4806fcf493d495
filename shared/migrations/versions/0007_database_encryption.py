"""databases.encryption: a database's own age recipients, or none, over the global ones

Revision ID: 0007_database_encryption
Revises: 0006_encryption_attempts
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_database_encryption'
down_revision = '0006_encryption_attempts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('databases') as batch:
        # {"type": "age", "recipients": [...]} or {"type": "none"}; null: the global setting.
        batch.add_column(sa.Column('encryption', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('databases') as batch:
        batch.drop_column('encryption')
