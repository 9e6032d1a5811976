"""The trace schema, its canonical JSON and the pseudonyms."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from insitu.trace_client import TracerClient, TracerUnavailable, make_trace, pseudonym
from tracer.devchain import free_port
from insitu.trace import Action, MAX_CANONICAL_BYTES, Trace, canonical_json, leaf_hash, parse_trace

KEY = b"k"
GOLDEN = {
    "id": "3f2b8c1e-0a4d-4e8b-9c61-2d7e5f9a1b30",
    "time": "2026-11-22T10:11:12.5+01:00",
    "caller": "dataset-service",
    "user": pseudonym("alice", KEY),
    "action": "USE_DATASETS",
    "dataset_ids": ["ds-2", "ds-1"],
    "digests": {"ds-2": "aa" * 32, "ds-1": "bb" * 32},
    "details": {"session_id": "s-1", "profile": "cpu", "n": 2, "gpu": False, "tags": ["a", 1, None]},
}


def good(**over):
    d = dict(GOLDEN)
    d.update(over)
    return d


def test_golden_canonical_json_and_leaf_hash():
    t = parse_trace(GOLDEN)
    canonical = t.canonical_bytes()
    assert canonical == (
        b'{"action":"USE_DATASETS","caller":"dataset-service","dataset_ids":["ds-2","ds-1"],'
        b'"details":{"gpu":false,"n":2,"profile":"cpu","session_id":"s-1","tags":["a",1,null]},'
        b'"digests":{"ds-1":"' + b"bb" * 32 + b'","ds-2":"' + b"aa" * 32 + b'"},'
        b'"id":"3f2b8c1e-0a4d-4e8b-9c61-2d7e5f9a1b30","time":"2026-11-22T09:11:12.500000Z",'
        b'"user":"' + pseudonym("alice", KEY).encode() + b'","version":1}'
    )
    # leaf = sha256(0x00 || canonical)
    import hashlib

    assert t.leaf_hash() == hashlib.sha256(b"\x00" + canonical).digest()
    # canonical JSON of the parsed canonical form is a fixed point
    assert canonical_json(json.loads(canonical)) == canonical
    assert parse_trace(canonical).canonical_bytes() == canonical


def test_any_change_changes_the_leaf():
    base = parse_trace(GOLDEN).leaf_hash()
    variants = [
        good(id=str(uuid.UUID(GOLDEN["id"]).int + 1 and uuid.uuid4())),
        good(time="2026-11-22T10:11:12.500001+01:00"),
        good(caller="insitu-hub"),
        good(user=pseudonym("bob", KEY)),
        good(action="END_SESSION"),
        good(dataset_ids=["ds-1", "ds-2"]),
        good(digests={"ds-2": "aa" * 32, "ds-1": "bc" * 32}),
        good(details={**GOLDEN["details"], "n": 3}),
    ]
    leaves = {parse_trace(v).leaf_hash() for v in variants}
    assert base not in leaves and len(leaves) == len(variants)


@pytest.mark.parametrize(
    "bad",
    [
        good(action="DELETE_EVERYTHING"),
        good(extra_field=1),
        {k: v for k, v in GOLDEN.items() if k != "caller"},
        {k: v for k, v in GOLDEN.items() if k != "id"},
        {k: v for k, v in GOLDEN.items() if k != "time"},
        good(id="not-a-uuid"),
        good(version=2),
        good(time="2026-11-22T10:11:12"),  # no timezone
        good(user="alice"),  # a login, not a pseudonym
        good(user="Alice Smith"),
        good(caller="dataset service"),
        good(dataset_ids=["ds 1"]),
        good(dataset_ids=[f"ds-{i}" for i in range(300)]),
        good(digests={"ds-1": "not-hex"}),
        good(details={"patient_name": "x"}),
        good(details={"email": "x"}),
        good(details={"note": "contact alice.smith@hospital.org"}),
        good(details={"x": 1.5}),
        good(details={"x": {"nested": 1}}),
        good(details={"x": "a\nb"}),
        good(details={"x": "a" * 257}),
        good(details={"Bad-Key": 1}),
    ],
)
def test_bad_traces_are_refused(bad):
    with pytest.raises(ValidationError):
        parse_trace(bad)


def test_oversize_trace_is_refused():
    digests = {f"results/file-{i:04d}-{'x' * 60}.bin": "ab" * 32 for i in range(1000)}
    assert len(canonical_json(digests)) > MAX_CANONICAL_BYTES
    with pytest.raises(ValidationError, match="too large"):
        parse_trace(good(digests=digests))


def test_every_required_action_exists():
    for name in ["CREATE_DATASET", "UPDATE_DATASET", "REQUEST_ACCESS", "GRANT_ACCESS", "REJECT_ACCESS",
                 "REVOKE_ACCESS", "USE_DATASETS", "END_SESSION", "REQUEST_EXPORT", "APPROVE_EXPORT", "REJECT_EXPORT"]:
        assert Action(name).value == name


def test_pseudonym_is_keyed_and_stable():
    p = pseudonym("alice", b"key-1")
    assert p == pseudonym("alice", "key-1") and len(p) == 64 and "alice" not in p
    assert p != pseudonym("alice", b"key-2")
    assert p != pseudonym("alicE", b"key-1")
    with pytest.raises(ValueError):
        pseudonym("alice", b"")


def test_make_trace_builds_a_valid_trace():
    t = make_trace(Action.GRANT_ACCESS, caller="dataset-service", user=pseudonym("dac1", KEY),
                   dataset_ids=["ds-1"], details={"project": "lung"})
    assert isinstance(t, Trace) and t.time.tzinfo is not None
    assert abs(t.time - datetime.now(timezone.utc)) < timedelta(seconds=5)
    tid = uuid.uuid4()
    assert make_trace("END_SESSION", caller="insitu-hub", id=str(tid)).id == tid


def test_client_reports_an_unreachable_tracer():
    client = TracerClient(f"http://127.0.0.1:{free_port()}/services/tracer", "t", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(TracerUnavailable):
        client.send_sync(make_trace("END_SESSION", caller="insitu-hub"))
