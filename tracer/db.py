"""The tracer's database: traces (the durable outbox), their datasets, batches.

Invariants
- ``traces.seq`` is gap-free: it is assigned from the ``counters`` row in the
  same transaction that inserts the trace (never from a database sequence,
  which leaves holes after a rollback).
- ``traces.canonical`` holds the exact canonical JSON; everything else in the
  row is derived from it (for indexes) or from the batch.
- A trace belongs to at most one batch; batch ``n`` covers
  ``[first_seq, last_seq]`` with ``first_seq`` = batch ``n-1``'s ``last_seq + 1``.
- At most one batch is not yet ``anchored`` (the one in flight).

The schema is created and upgraded by Alembic (``tracer/migrations``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# BIGINT on PostgreSQL; INTEGER on SQLite, where "INTEGER PRIMARY KEY" is the rowid itself (one lookup, not two)
SeqInt = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class TraceRow(Base):
    __tablename__ = "traces"

    seq: Mapped[int] = mapped_column(SeqInt, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    time: Mapped[datetime] = mapped_column(DateTime)  # UTC, naive
    caller: Mapped[str] = mapped_column(String(128))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    canonical: Mapped[str] = mapped_column(Text)
    leaf: Mapped[bytes] = mapped_column(LargeBinary(32))
    received_at: Mapped[datetime] = mapped_column(DateTime)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), nullable=True)
    proof: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (
        Index("ix_traces_user_seq", "user", "seq"),
        Index("ix_traces_action_seq", "action", "seq"),
        Index("ix_traces_caller_seq", "caller", "seq"),
        Index("ix_traces_time", "time"),
        Index("ix_traces_batch", "batch_id"),
    )


class TraceDataset(Base):
    __tablename__ = "trace_datasets"

    dataset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(ForeignKey("traces.seq"), primary_key=True)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # = the contract's batch index
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    previous_root: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(16))  # prepared | signed | anchored
    created_at: Mapped[datetime] = mapped_column(DateTime)
    nonce: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    anchored_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_batches_state", "state"),)


class Counter(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def make_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and the chosen synchronous level."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sync = sqlite_synchronous.upper()
        if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad sqlite synchronous level {sqlite_synchronous!r}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache: indexes of millions of traces
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
