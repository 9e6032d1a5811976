"""export airlock: export requests, frozen files, reviews (dataset_service.airlock.models)

Revision ID: 0201
Revises: 0101
"""
from alembic import op
import sqlalchemy as sa


revision = '0201'
down_revision = '0101'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('export_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('requester', sa.String(length=255), nullable=False),
    sa.Column('project', sa.String(length=128), nullable=True),
    sa.Column('session_id', sa.String(length=64), nullable=True),
    sa.Column('dataset_ids', sa.JSON(), nullable=False),
    sa.Column('justification', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('quorum', sa.Integer(), nullable=False),
    sa.Column('total_size', sa.BigInteger(), nullable=False),
    sa.Column('replaces_id', sa.String(length=36), nullable=True),
    sa.Column('draft_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_requests'))
    )
    with op.batch_alter_table('export_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_requests_requester'), ['requester'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_requests_project'), ['project'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_requests_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_requests_state'), ['state'], unique=False)

    op.create_table('export_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=True),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('preview', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['export_requests.id'], name=op.f('fk_export_files_request_id_export_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_files')),
    sa.UniqueConstraint('request_id', 'name', name=op.f('uq_export_files_request_id'))
    )
    with op.batch_alter_table('export_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_files_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_files_sha256'), ['sha256'], unique=False)

    op.create_table('export_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('reviewer', sa.String(length=255), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['export_requests.id'], name=op.f('fk_export_reviews_request_id_export_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_reviews')),
    sa.UniqueConstraint('request_id', 'reviewer', name=op.f('uq_export_reviews_request_id'))
    )
    with op.batch_alter_table('export_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_reviews_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    op.drop_table('export_reviews')
    op.drop_table('export_files')
    op.drop_table('export_requests')
