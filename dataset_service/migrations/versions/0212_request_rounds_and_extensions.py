"""access requests: what each round submitted; extensions of a grant

Revision ID: 0212
Revises: 0211
"""
from alembic import op
import sqlalchemy as sa


revision = '0212'
down_revision = '0211'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_request_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('intended_use', sa.Text(), nullable=False),
    sa.Column('duration_days', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id', 'round', name='uq_access_request_rounds')
    )
    op.create_index(op.f('ix_access_request_rounds_request_id'), 'access_request_rounds', ['request_id'], unique=False)
    with op.batch_alter_table('access_requests') as b:
        b.add_column(sa.Column('extends_grant_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_requests') as b:
        b.drop_column('extends_grant_id')
    op.drop_index(op.f('ix_access_request_rounds_request_id'), table_name='access_request_rounds')
    op.drop_table('access_request_rounds')
