"""initial schema: traces, trace_datasets, batches, counters, meta

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("previous_root", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("nonce", sa.Integer, nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("raw_tx", sa.LargeBinary, nullable=True),
        sa.Column("block_number", sa.BigInteger, nullable=True),
        sa.Column("anchored_at", sa.DateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_batches_state", "batches", ["state"])
    op.create_table(
        "traces",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("caller", sa.String(128), nullable=False),
        sa.Column("user", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("canonical", sa.Text, nullable=False),
        sa.Column("leaf", sa.LargeBinary(32), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id"), nullable=True),
        sa.Column("proof", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_traces_user_seq", "traces", ["user", "seq"])
    op.create_index("ix_traces_action_seq", "traces", ["action", "seq"])
    op.create_index("ix_traces_caller_seq", "traces", ["caller", "seq"])
    op.create_index("ix_traces_time", "traces", ["time"])
    op.create_index("ix_traces_batch", "traces", ["batch_id"])
    op.create_table(
        "trace_datasets",
        sa.Column("dataset_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("traces.seq"), primary_key=True),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(sa.table("counters", sa.column("name"), sa.column("value")), [{"name": "seq", "value": 0}])


def downgrade() -> None:
    for t in ("meta", "counters", "trace_datasets", "traces", "batches"):
        op.drop_table(t)
