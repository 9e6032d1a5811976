"""The tracer's storage and anchoring on PostgreSQL 15 (a throwaway cluster from Debian's binaries)."""


import pytest
from sqlalchemy import inspect

from tracer.db import make_engine, upgrade
from tracer.store import Conflict, TraceStore
from tracer.verify import verify_against_chain

from tracer_helpers import make_batcher, new_traces

pytestmark = pytest.mark.postgres


# pg_url: a fresh database in the session's throwaway cluster (tests/fixtures/postgres.py)


def test_intake_anchoring_queries_on_postgres(pg_url, anvil):
    engine = make_engine(pg_url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert {"traces", "trace_datasets", "batches", "counters", "meta", "alembic_version"} <= set(
        inspect(engine).get_table_names())
    store = TraceStore(engine)
    ts = new_traces(120)
    res = store.add_many(ts)
    assert [r.seq for r in res] == list(range(1, 121))
    assert all(r.duplicate for r in store.add_many(ts[:5]))
    assert isinstance(store.add_many([ts[0].model_copy(update={"caller": "insitu-hub"})])[0], Conflict)
    b = make_batcher(store, anvil.url, batch_max=50)
    b.drain()
    recs = store.query(limit=1000)
    assert len(recs) == 120 and all(r["status"] == "anchored" for r in recs)
    assert len(store.query(dataset="ds-1", limit=1000)) == 24
    assert verify_against_chain(recs, anvil.url, b.chain.address).ok
    engine.dispose()
