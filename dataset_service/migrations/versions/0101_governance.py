"""governance: access requests, votes, grants, workspace sessions (dataset_service.governance.models)

Revision ID: 0101
Revises: 0001
Create Date: 2026-11-22 04:25:09.750124
"""
from alembic import op
import sqlalchemy as sa


revision = '0101'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('work_sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('project', sa.String(length=128), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_sessions'))
    )
    with op.batch_alter_table('work_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_sessions_closed_at'), ['closed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_sessions_user'), ['user'], unique=False)

    op.create_table('access_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('project', sa.String(length=128), nullable=False),
    sa.Column('requester', sa.String(length=255), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('intended_use', sa.Text(), nullable=False),
    sa.Column('duration_days', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('submitted', 'changes-requested', 'resubmitted', 'approved', 'rejected', 'withdrawn', 'expired', name='access_request_state', native_enum=False, length=32), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_access_requests_dataset_id_datasets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_requests'))
    )
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_requests_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_requests_project'), ['project'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_requests_requester'), ['requester'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_requests_state'), ['state'], unique=False)

    op.create_table('access_grants',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('project', sa.String(length=128), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('granted_by', sa.JSON(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=255), nullable=True),
    sa.Column('revoke_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_access_grants_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'], name=op.f('fk_access_grants_request_id_access_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_grants')),
    sa.UniqueConstraint('request_id', name=op.f('uq_access_grants_request_id'))
    )
    with op.batch_alter_table('access_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_grants_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_grants_project'), ['project'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_grants_revoked_at'), ['revoked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_grants_valid_until'), ['valid_until'], unique=False)

    op.create_table('access_request_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'], name=op.f('fk_access_request_events_request_id_access_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_request_events'))
    )
    with op.batch_alter_table('access_request_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_request_events_request_id'), ['request_id'], unique=False)

    op.create_table('access_votes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=255), nullable=False),
    sa.Column('decision', sa.Enum('approve', 'reject', name='access_vote_decision', native_enum=False, length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'], name=op.f('fk_access_votes_request_id_access_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_votes')),
    sa.UniqueConstraint('request_id', 'round', 'reviewer', name='uq_access_votes_once_per_round')
    )
    with op.batch_alter_table('access_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_votes_request_id'), ['request_id'], unique=False)

    op.create_table('work_session_datasets',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('manifest_root', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_work_session_datasets_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['grant_id'], ['access_grants.id'], name=op.f('fk_work_session_datasets_grant_id_access_grants')),
    sa.ForeignKeyConstraint(['session_id'], ['work_sessions.id'], name=op.f('fk_work_session_datasets_session_id_work_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'dataset_id', name=op.f('pk_work_session_datasets'))
    )
    with op.batch_alter_table('work_session_datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_session_datasets_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_session_datasets_grant_id'), ['grant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('work_session_datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_session_datasets_grant_id'))
        batch_op.drop_index(batch_op.f('ix_work_session_datasets_dataset_id'))

    op.drop_table('work_session_datasets')
    with op.batch_alter_table('access_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_votes_request_id'))

    op.drop_table('access_votes')
    with op.batch_alter_table('access_request_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_request_events_request_id'))

    op.drop_table('access_request_events')
    with op.batch_alter_table('access_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_grants_valid_until'))
        batch_op.drop_index(batch_op.f('ix_access_grants_revoked_at'))
        batch_op.drop_index(batch_op.f('ix_access_grants_project'))
        batch_op.drop_index(batch_op.f('ix_access_grants_dataset_id'))

    op.drop_table('access_grants')
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_requests_state'))
        batch_op.drop_index(batch_op.f('ix_access_requests_requester'))
        batch_op.drop_index(batch_op.f('ix_access_requests_project'))
        batch_op.drop_index(batch_op.f('ix_access_requests_dataset_id'))

    op.drop_table('access_requests')
    with op.batch_alter_table('work_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_sessions_user'))
        batch_op.drop_index(batch_op.f('ix_work_sessions_closed_at'))

    op.drop_table('work_sessions')
