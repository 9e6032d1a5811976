"""index skips (what the indexer left out, with reasons) and the dataset report

Revision ID: 0210
Revises: 0201
"""
from alembic import op
import sqlalchemy as sa


revision = '0210'
down_revision = '0201'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('index_skips',
    sa.Column('path', sa.String(length=1023), nullable=False),
    sa.Column('study_id', sa.String(length=511), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('link', sa.Boolean(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('path')
    )
    op.create_index(op.f('ix_index_skips_study_id'), 'index_skips', ['study_id'], unique=False)
    with op.batch_alter_table('datasets') as b:
        b.add_column(sa.Column('report', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('datasets') as b:
        b.drop_column('report')
    op.drop_index(op.f('ix_index_skips_study_id'), table_name='index_skips')
    op.drop_table('index_skips')
