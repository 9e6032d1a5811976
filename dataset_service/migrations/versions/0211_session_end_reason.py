"""why a workspace session ended (stopped, revoked, invalidated, expired, crashed, failed_start)

Revision ID: 0211
Revises: 0210
"""
from alembic import op
import sqlalchemy as sa


revision = '0211'
down_revision = '0210'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('work_sessions') as b:
        b.add_column(sa.Column('end_reason', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('work_sessions') as b:
        b.drop_column('end_reason')
