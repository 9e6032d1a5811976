"""The tracer killed with SIGKILL at every step, then restarted: nothing lost, nothing anchored twice."""

import signal

import httpx
import pytest

from tracer.chain import anchor_events, connect
from insitu.trace_client import TracerClient, TracerUnavailable
from tracer.db import make_engine
from tracer.store import TraceStore
from tracer.verify import verify_records

from tracer_helpers import new_traces, wait_until


def rpc(url, method, *params):
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10)
    r.raise_for_status()
    return r.json().get("result")


def open_store(tp) -> TraceStore:
    return TraceStore(make_engine(tp.env["TRACER_DATABASE_URL"]))


def check_everything_anchored_once(tp, chain_url, expected: int):
    store = open_store(tp)
    try:
        wait_until(lambda: store.pending_stats()[0] == 0, timeout=60, what="all traces anchored after the restart")
        address = store.get_meta("contract_address")
        events = anchor_events(connect(chain_url), address)
        ranges = [(e.first_seq, e.last_seq) for e in events]
        assert len(ranges) == len(set(ranges)) == store.anchored_batch_count()
        records = store.query(limit=100_000)
        assert len(records) == expected and [r["seq"] for r in records] == list(range(1, expected + 1))
        rep = verify_records(records, events)
        assert rep.ok, rep.errors
        return events
    finally:
        store.engine.dispose()


@pytest.mark.parametrize(
    "point",
    [pytest.param("after_prepare", marks=pytest.mark.slow), "after_sign", pytest.param("after_send", marks=pytest.mark.slow)],
)
def test_killed_between_anchoring_steps(point, tracer_factory, anvil, hub_server, tmp_path):
    # the first batch forms exactly when the 40th trace is stored
    tp = tracer_factory(anvil.url, TRACER_FAILPOINT=point, TRACER_BATCH_MAX="40", TRACER_BATCH_WAIT="600").start()
    client = TracerClient(tp.url, hub_server.token_for("dataset-service"), retries=1)
    for t in new_traces(40):
        client.send_sync(t)
    tp.process.wait(30)
    assert tp.process.returncode == -signal.SIGKILL, tp.log()
    state = open_store(tp).last_batch().state
    assert state == {"after_prepare": "prepared", "after_sign": "signed", "after_send": "signed"}[point]
    for k in ("TRACER_FAILPOINT", "TRACER_BATCH_MAX", "TRACER_BATCH_WAIT"):
        tp.env.pop(k)
    tp.start()
    client.send_sync(new_traces(1)[0])  # and the restarted tracer goes on
    check_everything_anchored_once(tp, anvil.url, 41)


def test_killed_after_commit_before_answering(tracer_factory, anvil, hub_server):
    tp = tracer_factory(anvil.url, TRACER_FAILPOINT="after_intake_commit").start()
    client = TracerClient(tp.url, hub_server.token_for("dataset-service"), retries=1)
    t = new_traces(1)[0]
    with pytest.raises(TracerUnavailable):
        client.send_sync(t)
    tp.process.wait(30)
    tp.env.pop("TRACER_FAILPOINT")
    tp.start()
    answer = client.send_sync(t)  # the caller retries: the trace is there once
    assert answer == {"id": str(t.id), "seq": 1, "status": "duplicate"}
    check_everything_anchored_once(tp, anvil.url, 1)


def test_killed_while_the_anchor_is_pending_on_the_chain(tracer_factory, hub_server, tmp_path):
    from tracer.devchain import start_anvil

    chain = start_anvil(log_path=tmp_path / "anvil.log")
    try:
        tp = tracer_factory(chain.url).start()
        rpc(chain.url, "evm_setAutomine", False)  # transactions now wait in the pool, like between Besu blocks
        client = TracerClient(tp.url, hub_server.token_for("dataset-service"))
        for t in new_traces(25):
            client.send_sync(t)
        store = open_store(tp)
        wait_until(lambda: (b := store.last_batch()) is not None and b.state == "signed", what="anchor sent")
        wait_until(lambda: tp.metrics().get("tracer_anchor_transactions_sent_total", 0) >= 1, what="broadcast")
        inflight = store.last_batch()
        tp.kill()
        rpc(chain.url, "evm_mine")  # the pending anchor is mined while the tracer is dead
        rpc(chain.url, "evm_setAutomine", True)
        tp.start()
        events = check_everything_anchored_once(tp, chain.url, 25)
        assert [e.tx_hash for e in events if e.first_seq == inflight.first_seq] == [inflight.tx_hash]
    finally:
        chain.stop()
