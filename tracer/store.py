"""Reading and writing the tracer's database (no chain, no HTTP).

``TraceStore.add_many`` is the durable intake: in ONE transaction it checks
which ids are already stored, assigns gap-free sequence numbers from the
counter row and inserts the new traces; the caller answers 202 only after it
returns. ``prepare_batch`` takes the pending traces in sequence order, builds
the Merkle tree, and stores the batch with every trace's proof in one
transaction. The chain side (signing, sending, receipts) is in
``tracer.batcher``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.orm import Session

from insitu import merkle
from insitu.clock import utcnow_naive as utcnow  # the tracer stores naive UTC
from tracer.db import Batch, Counter, Meta, TraceDataset, TraceRow
from insitu.trace import Trace, leaf_hash

ZERO_ROOT = b"\x00" * 32


class Conflict(Exception):
    """A trace id that is already stored with different content."""


@dataclass(frozen=True)
class Stored:
    id: str
    seq: int
    duplicate: bool


@dataclass(frozen=True)
class BatchInfo:
    id: int
    first_seq: int
    last_seq: int
    root: bytes
    previous_root: bytes
    state: str
    nonce: int | None
    tx_hash: str | None
    raw_tx: bytes | None
    block_number: int | None
    anchored_at: datetime | None
    attempts: int

    @classmethod
    def of(cls, b: Batch) -> "BatchInfo":
        return cls(b.id, b.first_seq, b.last_seq, b.root, b.previous_root, b.state, b.nonce, b.tx_hash,
                   b.raw_tx, b.block_number, b.anchored_at, b.attempts)

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1


class TraceStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- intake --------------------------------------------------------------
    def add_many(self, traces: Sequence[Trace]) -> list[Stored | Conflict]:
        """Store traces durably; one result per input, in order."""
        rows = [(t, str(t.id), t.canonical_bytes()) for t in traces]
        results: list[Stored | Conflict | None] = [None] * len(rows)
        with Session(self.engine) as s, s.begin():
            existing: dict[str, tuple[int, str]] = {}
            ids = list({r[1] for r in rows})
            for i in range(0, len(ids), 500):
                for seq, tid, canon in s.execute(
                    select(TraceRow.seq, TraceRow.id, TraceRow.canonical).where(TraceRow.id.in_(ids[i : i + 500]))
                ):
                    existing[tid] = (seq, canon)
            new: list[int] = []
            fresh: dict[str, int] = {}  # id -> index in rows of its first new occurrence
            for i, (t, tid, canon) in enumerate(rows):
                if tid in existing:
                    seq, old = existing[tid]
                    results[i] = Stored(tid, seq, True) if old.encode("utf-8") == canon else Conflict(tid)
                elif tid in fresh:
                    results[i] = ("dup", fresh[tid])  # resolved below
                else:
                    fresh[tid] = i
                    new.append(i)
            if new:
                last = s.execute(
                    update(Counter).where(Counter.name == "seq").values(value=Counter.value + len(new))
                    .returning(Counter.value)
                ).scalar_one()
                first = last - len(new) + 1
                now = utcnow()
                trace_rows, ds_rows = [], []
                for k, i in enumerate(new):
                    t, tid, canon = rows[i]
                    seq = first + k
                    trace_rows.append(dict(
                        seq=seq, id=tid, time=t.time.replace(tzinfo=None), caller=t.caller, user=t.user,
                        action=t.action.value, canonical=canon.decode("utf-8"), leaf=leaf_hash(canon), received_at=now,
                    ))
                    for d in dict.fromkeys(t.dataset_ids):
                        ds_rows.append(dict(dataset_id=d, seq=seq))
                    results[i] = Stored(tid, seq, False)
                s.execute(insert(TraceRow), trace_rows)
                if ds_rows:
                    s.execute(insert(TraceDataset), ds_rows)
            for i, r in enumerate(results):
                if isinstance(r, tuple):
                    first_i = r[1]
                    same = rows[first_i][2] == rows[i][2]
                    results[i] = Stored(rows[i][1], results[first_i].seq, True) if same else Conflict(rows[i][1])
        return results  # type: ignore[return-value]

    # --- meta ------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with Session(self.engine) as s:
            row = s.get(Meta, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(Meta, key)
            if row:
                row.value = value
            else:
                s.add(Meta(key=key, value=value))

    # --- batches ---------------------------------------------------------------
    def last_seq(self) -> int:
        with Session(self.engine) as s:
            return s.execute(select(Counter.value).where(Counter.name == "seq")).scalar_one()

    def last_batch(self) -> BatchInfo | None:
        with Session(self.engine) as s:
            b = s.execute(select(Batch).order_by(Batch.id.desc()).limit(1)).scalar_one_or_none()
            return BatchInfo.of(b) if b else None

    def inflight_batch(self) -> BatchInfo | None:
        with Session(self.engine) as s:
            b = s.execute(select(Batch).where(Batch.state != "anchored").order_by(Batch.id).limit(1)).scalar_one_or_none()
            return BatchInfo.of(b) if b else None

    def pending_stats(self) -> tuple[int, float | None, int]:
        """(traces not yet anchored, age in seconds of the oldest one, traces not yet in a batch)."""
        with Session(self.engine) as s:
            last = s.execute(select(Counter.value).where(Counter.name == "seq")).scalar_one()
            anchored = s.execute(
                select(func.max(Batch.last_seq)).where(Batch.state == "anchored")
            ).scalar_one() or 0
            batched = s.execute(select(func.max(Batch.last_seq))).scalar_one() or 0
            age = None
            if last > anchored:
                t0 = s.execute(select(TraceRow.received_at).where(TraceRow.seq == anchored + 1)).scalar_one_or_none()
                if t0 is not None:
                    age = max(0.0, (utcnow() - t0).total_seconds())
            return last - anchored, age, last - batched

    def oldest_unbatched_age(self) -> tuple[int, float | None]:
        with Session(self.engine) as s:
            last = s.execute(select(Counter.value).where(Counter.name == "seq")).scalar_one()
            batched = s.execute(select(func.max(Batch.last_seq))).scalar_one() or 0
            if last <= batched:
                return 0, None
            t0 = s.execute(select(TraceRow.received_at).where(TraceRow.seq == batched + 1)).scalar_one()
            return last - batched, (utcnow() - t0).total_seconds()

    def prepare_batch(self, max_size: int) -> BatchInfo | None:
        """Form the next batch from pending traces (with proofs), or None if nothing is pending."""
        with Session(self.engine) as s, s.begin():
            prev = s.execute(select(Batch).order_by(Batch.id.desc()).limit(1)).scalar_one_or_none()
            if prev is not None and prev.state != "anchored":
                raise RuntimeError("a batch is still in flight")
            first = (prev.last_seq + 1) if prev else 1
            leaves = [
                leaf for (leaf,) in s.execute(
                    select(TraceRow.leaf).where(and_(TraceRow.seq >= first, TraceRow.seq < first + max_size))
                    .order_by(TraceRow.seq)
                )
            ]
            if not leaves:
                return None
            levels = merkle.build_levels(leaves)
            root = levels[-1][0]
            batch = Batch(
                id=(prev.id + 1) if prev else 0, first_seq=first, last_seq=first + len(leaves) - 1, root=root,
                previous_root=prev.root if prev else ZERO_ROOT, state="prepared", created_at=utcnow(), attempts=0,
            )
            s.add(batch)
            s.flush()
            s.execute(
                update(TraceRow),
                [
                    {"seq": first + i, "batch_id": batch.id, "proof": merkle.pack_proof(merkle.proof_from_levels(levels, i))}
                    for i in range(len(leaves))
                ],
            )
            return BatchInfo.of(batch)

    def mark_signed(self, batch_id: int, nonce: int, tx_hash: str, raw_tx: bytes) -> None:
        with Session(self.engine) as s, s.begin():
            b = s.get(Batch, batch_id)
            b.state, b.nonce, b.tx_hash, b.raw_tx = "signed", nonce, tx_hash, raw_tx
            b.attempts = (b.attempts or 0) + 1

    def mark_anchored(self, batch_id: int, tx_hash: str, block_number: int) -> None:
        with Session(self.engine) as s, s.begin():
            b = s.get(Batch, batch_id)
            b.state, b.tx_hash, b.block_number, b.anchored_at = "anchored", tx_hash, block_number, utcnow()
            b.raw_tx = None

    def mark_error(self, batch_id: int, error: str) -> None:
        with Session(self.engine) as s, s.begin():
            b = s.get(Batch, batch_id)
            if b is not None:
                b.last_error = error[:2000]

    def anchored_batch_count(self) -> int:
        with Session(self.engine) as s:
            return s.execute(select(func.count()).select_from(Batch).where(Batch.state == "anchored")).scalar_one()

    # --- queries (auditors) ----------------------------------------------------
    def query(
        self,
        *,
        user: str | None = None,
        dataset: str | None = None,
        action: str | None = None,
        caller: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Traces matching every given filter, in sequence order after ``after_seq``."""
        q = select(*_RECORD_COLUMNS).join(Batch, TraceRow.batch_id == Batch.id, isouter=True)
        if dataset is not None:
            q = q.join(TraceDataset, and_(TraceDataset.seq == TraceRow.seq, TraceDataset.dataset_id == dataset))
            seq_col = TraceDataset.seq  # drives the (dataset_id, seq) primary-key index
        else:
            seq_col = TraceRow.seq
        if user is not None:
            q = q.where(user_condition(user))
        if action is not None:
            q = q.where(TraceRow.action == action)
        if caller is not None:
            q = q.where(TraceRow.caller == caller)
        if since is not None:
            q = q.where(TraceRow.time >= since)
        if until is not None:
            q = q.where(TraceRow.time < until)
        q = q.where(seq_col > after_seq).order_by(seq_col).limit(limit)
        with self.engine.connect() as conn:
            return [record(row) for row in conn.execute(q)]

    def query_project(self, project: str, *, after_seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Traces whose details name ``project`` (a text match on the canonical JSON, which writes it
        exactly as ``"project":"<code>"``; callers re-check the parsed value)."""
        needle = json.dumps({"project": project}, separators=(",", ":"), ensure_ascii=False)[1:-1]
        q = (select(*_RECORD_COLUMNS).join(Batch, TraceRow.batch_id == Batch.id, isouter=True)
             .where(TraceRow.canonical.contains(needle, autoescape=True))
             .where(TraceRow.seq > after_seq).order_by(TraceRow.seq).limit(limit))
        with self.engine.connect() as conn:
            return [record(row) for row in conn.execute(q)]

    def get(self, trace_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_RECORD_COLUMNS).join(Batch, TraceRow.batch_id == Batch.id, isouter=True).where(TraceRow.id == trace_id)
            ).first()
            return record(row) if row else None


def user_condition(user: str):
    """A full pseudonym (64 hex) matches itself; a shorter hex prefix (the 12 characters the pages
    show) matches every pseudonym that starts with it, as a range on the user index; anything
    else matches nothing."""
    u = user.strip().lower()
    if len(u) == 64 and all(c in "0123456789abcdef" for c in u):
        return TraceRow.user == u
    if 1 <= len(u) < 64 and all(c in "0123456789abcdef" for c in u):
        return and_(TraceRow.user >= u, TraceRow.user < u + "g")
    return TraceRow.user == user  # not a pseudonym: no trace has it


def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if t else None


_RECORD_COLUMNS = (
    TraceRow.seq, TraceRow.canonical, TraceRow.leaf, TraceRow.received_at, TraceRow.proof,
    Batch.id.label("batch"), Batch.first_seq, Batch.last_seq, Batch.root, Batch.previous_root, Batch.state,
    Batch.tx_hash, Batch.block_number, Batch.anchored_at,
)


def record(r) -> dict[str, Any]:
    """A trace as auditors and the verifier see it: the trace, its seq, proof and anchor."""
    anchored = r.state == "anchored"
    anchor = proof = None
    if anchored:
        anchor = {
            "batch": r.batch,
            "first_seq": r.first_seq,
            "last_seq": r.last_seq,
            "root": "0x" + r.root.hex(),
            "previous_root": "0x" + r.previous_root.hex(),
            "tx_hash": r.tx_hash,
            "block_number": r.block_number,
            "anchored_at": _iso(r.anchored_at),
        }
        if r.proof is not None:
            p = r.proof.hex()
            proof = ["0x" + p[i : i + 64] for i in range(0, len(p), 64)]
    return {
        "seq": r.seq,
        "trace": json.loads(r.canonical),
        "leaf": "0x" + r.leaf.hex(),
        "received_at": _iso(r.received_at),
        "status": "anchored" if anchored else "pending",
        "proof": proof,
        "anchor": anchor,
    }
