"""The tracer's storage and anchoring on PostgreSQL 15 (a throwaway cluster from Debian's binaries)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tracer.db import make_engine, upgrade
from tracer.devchain import free_port
from tracer.store import Conflict, TraceStore
from tracer.verify import verify_against_chain

from tracer_helpers import make_batcher, new_traces

PG_BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = pytest.mark.postgres


def _as_postgres(*cmd):
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + list(cmd), capture_output=True, text=True)


@pytest.fixture(scope="module")
def pg_url():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (scripts/apt-packages.txt)")
    d = Path(tempfile.mkdtemp(prefix="tracer-pg-"))
    os.chmod(d, 0o755)
    data, sock = d / "data", d / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    r = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    assert r.returncode == 0, r.stderr
    port = free_port()
    r = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(d / "log"), "-w", "-t", "60", "-o",
                     f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    assert r.returncode == 0, r.stderr
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(d, ignore_errors=True)


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
