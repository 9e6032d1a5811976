"""per-file decisions of an export review (decision and comment per file)

Revision ID: 0214
Revises: 0213
"""
from alembic import op
import sqlalchemy as sa


revision = '0214'
down_revision = '0213'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('export_reviews') as b:
        b.add_column(sa.Column('file_decisions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('export_reviews') as b:
        b.drop_column('file_decisions')
