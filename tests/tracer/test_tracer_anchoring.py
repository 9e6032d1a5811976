"""Anchoring on a real anvil: batches, proofs, the offline verifier, tampering, chain outages."""

import json
import threading
import time

import pytest

from tracer.chain import anchor_events, connect
from tracer.devchain import free_port, start_anvil
from tracer.metrics import Metrics
from tracer.store import Conflict
from tracer.verify import read_records, verify_against_chain, verify_records

from tracer_helpers import make_batcher, wait_until


def export(store):
    return store.query(limit=100_000)


def events(url, address):
    return anchor_events(connect(url), address)


def test_batches_proofs_and_verification(store, anvil, traces):
    ts = traces(250)
    store.add_many(ts)
    b = make_batcher(store, anvil.url, batch_max=100)
    b.drain()
    recs = export(store)
    assert [r["seq"] for r in recs] == list(range(1, 251))
    assert all(r["status"] == "anchored" and r["proof"] for r in recs)
    assert [(r["anchor"]["first_seq"], r["anchor"]["last_seq"]) for r in recs[::100]] == [(1, 100), (101, 200), (201, 250)]
    assert b.chain.contract_state()[0] == 251 and b.chain.contract_state()[2] == 3
    rep = verify_against_chain(recs, anvil.url, b.chain.address)
    assert rep.ok, rep.errors
    assert (rep.verified, rep.batches, rep.chain_anchors) == (250, 3, 3)
    # the stored trace is byte for byte what the caller sent
    assert {r["trace"]["id"]: r["trace"] for r in recs}[str(ts[7].id)] == ts[7].canonical_dict()
    # one dataset's traces, a partial export: verifies without the completeness check only
    ds = store.query(dataset="ds-2", limit=1000)
    assert len(ds) == 50 and all("ds-2" in r["trace"]["dataset_ids"] for r in ds)
    assert verify_against_chain(ds, anvil.url, b.chain.address, partial=True).ok
    assert not verify_against_chain(ds, anvil.url, b.chain.address).ok


def test_duplicates_are_stored_once(store, traces):
    ts = traces(3)
    first = store.add_many(ts)
    again = store.add_many([ts[1], ts[1], ts[0]])
    assert [r.seq for r in again] == [first[1].seq, first[1].seq, first[0].seq] and all(r.duplicate for r in again)
    assert store.last_seq() == 3
    changed = ts[1].model_copy(update={"caller": "insitu-hub"})
    assert isinstance(store.add_many([changed])[0], Conflict)
    # two new posts of one id in one group: one trace
    new = traces(1)[0]
    res = store.add_many([new, new])
    assert res[0].seq == res[1].seq == 4 and not res[0].duplicate and res[1].duplicate
    assert store.last_seq() == 4


def test_per_trace_mode_one_transaction_each(store, anvil, traces):
    store.add_many(traces(5))
    b = make_batcher(store, anvil.url, batch_max=1)
    b.drain()
    assert len(events(anvil.url, b.chain.address)) == 5
    assert verify_against_chain(export(store), anvil.url, b.chain.address).ok


def test_any_changed_byte_of_a_trace_or_proof_is_detected(store, anvil, traces):
    store.add_many(traces(37))
    b = make_batcher(store, anvil.url, batch_max=16)
    b.drain()
    evs = events(anvil.url, b.chain.address)
    recs = export(store)
    assert verify_records(recs, evs).ok
    target = 20
    rec = recs[target]

    def detected(mutated_record) -> bool:
        trial = [dict(r) for r in recs]
        trial[target] = mutated_record
        return not verify_records(trial, evs).ok

    # every byte of the trace's canonical JSON, changed to another character
    text = json.dumps(rec["trace"], sort_keys=True, separators=(",", ":"))
    checked = 0
    for i, ch in enumerate(text):
        for repl in {"0" if ch != "0" else "1", "a" if ch != "a" else "b"}:
            mutated = text[:i] + repl + text[i + 1:]
            try:
                obj = json.loads(mutated)
            except json.JSONDecodeError:
                continue  # not JSON any more: the verifier cannot even read it
            if not isinstance(obj, dict):
                continue
            checked += 1
            assert detected({**rec, "trace": obj}), f"change at byte {i} of the trace not detected: {mutated}"
    assert checked > len(text) // 2
    # every hex digit of every proof element
    for k, h in enumerate(rec["proof"]):
        for i in range(2, len(h)):
            repl = "0" if h[i] != "0" else "1"
            proof = list(rec["proof"])
            proof[k] = h[:i] + repl + h[i + 1:]
            assert detected({**rec, "proof": proof}), f"proof element {k} digit {i}"
    # a missing or extra proof element, another sequence number, another batch
    assert detected({**rec, "proof": rec["proof"][:-1]})
    assert detected({**rec, "proof": rec["proof"] + [rec["proof"][0]]})
    assert detected({**rec, "seq": rec["seq"] + 1})
    assert detected({**rec, "anchor": {**rec["anchor"], "first_seq": 1}})
    # a dropped trace, a duplicated one: completeness
    assert not verify_records(recs[:target] + recs[target + 1:], evs).ok
    assert not verify_records(recs + [recs[3]], evs).ok
    # a trace that was never anchored
    assert not verify_records(recs + [{**recs[-1], "seq": 38}], evs).ok


def test_verifier_cli_on_an_export_file(store, anvil, traces, tmp_path):
    import subprocess
    import sys

    store.add_many(traces(30))
    b = make_batcher(store, anvil.url, batch_max=8)
    b.drain()
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in export(store)))
    cmd = [sys.executable, "-m", "tracer", "verify", str(path), "--chain-url", anvil.url, "--contract", b.chain.address]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK: 30 traces" in ok.stdout, ok.stdout + ok.stderr
    lines = path.read_text().splitlines()
    rec = json.loads(lines[11])
    rec["trace"]["details"]["session_id"] = "s-999"
    lines[11] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "seq 12" in bad.stdout, bad.stdout
    assert read_records(lines[0]) == [json.loads(lines[0])]


def test_chain_down_then_up_nothing_lost(store, traces, tmp_path):
    port = free_port()
    state = tmp_path / "chain-state.json"
    chain = start_anvil(port=port, state=state, log_path=tmp_path / "anvil.log")
    metrics = Metrics(store.pending_stats)
    b = make_batcher(store, chain.url, batch_max=50, metrics=metrics)
    stop = threading.Event()
    worker = threading.Thread(target=b.run, args=(stop,), daemon=True)
    try:
        store.add_many(traces(60))
        worker.start()
        wait_until(lambda: store.pending_stats()[0] == 0, what="first traces anchored")
        address = b.chain.address
        chain.stop()  # SIGTERM: anvil writes its state and exits
        store.add_many(traces(70))  # intake goes on while the chain is down
        wait_until(lambda: metrics.failures._value.get() >= 2, what="failed attempts")
        assert store.pending_stats()[0] == 70
        assert b.fatal is None
        chain = start_anvil(port=port, state=state, log_path=tmp_path / "anvil.log")
        wait_until(lambda: store.pending_stats()[0] == 0, timeout=60, what="anchoring after the chain came back")
    finally:
        stop.set()
        worker.join(10)
        chain.stop()
    chain = start_anvil(port=port, state=state)
    try:
        rep = verify_against_chain(export(store), chain.url, address)
        assert rep.ok, rep.errors
        assert rep.verified == 130 and rep.chain_anchors == rep.batches
    finally:
        chain.stop()


def test_with_a_block_period_like_besu(store, traces, tmp_path):
    chain = start_anvil(block_time=1, log_path=tmp_path / "anvil.log")
    try:
        store.add_many(traces(40))
        b = make_batcher(store, chain.url, batch_max=25)
        b.drain()
        evs = events(chain.url, b.chain.address)
        assert len(evs) == 2 and evs[0].block_number < evs[1].block_number
        assert verify_against_chain(export(store), chain.url, b.chain.address).ok
    finally:
        chain.stop()
