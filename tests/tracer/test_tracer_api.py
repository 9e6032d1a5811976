"""The tracer service as a real process behind a real JupyterHub identity plane."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from insitu.trace_client import TraceRejected, TracerClient, make_trace, pseudonym
from tracer.verify import verify_against_chain

from tracer_helpers import PSEUDONYM_KEY, new_traces, wait_until


@pytest.fixture()
def tracer(module_tracer):
    return module_tracer


def count(tracer, hub_server) -> int:
    r = httpx.get(tracer.url + "/traces", headers=auth(hub_server, "audrey"), params={"format": "jsonl"})
    return len(r.text.splitlines())


def auth(hub_server, name):
    return {"Authorization": f"token {hub_server.token_for(name)}"}


def post(tracer, headers, body):
    return httpx.post(tracer.url + "/traces", headers=headers, content=body if isinstance(body, bytes) else json.dumps(body))


def test_only_platform_services_may_post(tracer, hub_server):
    t = make_trace("USE_DATASETS", caller="dataset-service", user=pseudonym("alice", PSEUDONYM_KEY), dataset_ids=["ds-1"])
    body = t.canonical_dict()
    assert post(tracer, {}, body).status_code == 401
    assert post(tracer, {"Authorization": "token not-a-token"}, body).status_code == 401
    for user in ("alice", "audrey", "admin"):
        assert post(tracer, auth(hub_server, user), body).status_code == 403, user
    # a service may only post under its own name
    assert post(tracer, auth(hub_server, "insitu-hub"), body).status_code == 403
    # the tracer service itself is no writer
    assert post(tracer, auth(hub_server, "tracer"), body).status_code == 403
    # nothing of the refused posts was stored
    assert httpx.get(f"{tracer.url}/traces/{t.id}", headers=auth(hub_server, "audrey")).status_code == 404
    r = post(tracer, auth(hub_server, "dataset-service"), body)
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    assert httpx.get(f"{tracer.url}/traces/{t.id}", headers=auth(hub_server, "audrey")).status_code == 200


def test_only_auditors_and_admins_may_query(tracer, hub_server):
    client = TracerClient(tracer.url, hub_server.token_for("dataset-service"))
    t = make_trace("GRANT_ACCESS", caller="dataset-service", dataset_ids=["ds-9"])
    client.send_sync(t)
    for name, code in [("audrey", 200), ("admin", 200), ("alice", 403), ("dora", 403), ("dac1", 403),
                       ("dataset-service", 403), ("insitu-hub", 403)]:
        assert httpx.get(tracer.url + "/traces", headers=auth(hub_server, name)).status_code == code, name
        assert httpx.get(f"{tracer.url}/traces/{t.id}", headers=auth(hub_server, name)).status_code == (
            200 if code == 200 else 403), name
    assert httpx.get(tracer.url + "/traces").status_code == 401


def test_bad_posts_are_refused_and_change_nothing(tracer, hub_server):
    h = auth(hub_server, "dataset-service")
    good = make_trace("USE_DATASETS", caller="dataset-service", dataset_ids=["ds-1"]).canonical_dict()
    before = count(tracer, hub_server)
    bad_bodies = [
        {**good, "action": "DROP_TABLE"},
        {**good, "unknown": 1},
        {k: v for k, v in good.items() if k != "time"},
        {**good, "user": "alice"},
        {**good, "details": {"patient_name": "Jane Doe"}},
        b"not json",
        b"[]",
    ]
    for body in bad_bodies:
        r = post(tracer, h, body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"]
    huge = {**good, "details": {"x": "a" * 200}, "digests": {f"f{i}": "ab" * 32 for i in range(5000)}}
    assert post(tracer, h, huge).status_code == 413
    assert count(tracer, hub_server) == before
    r = post(tracer, h, good)
    assert r.status_code == 202 and count(tracer, hub_server) == before + 1
    with pytest.raises(TraceRejected) as e:
        TracerClient(tracer.url, hub_server.token_for("dataset-service")).send_sync({**good, "action": "NOPE"})
    assert e.value.status_code == 422


def test_duplicate_posts_store_one_trace_and_conflicts_are_refused(tracer, hub_server):
    client = TracerClient(tracer.url, hub_server.token_for("dataset-service"))
    t = make_trace("END_SESSION", caller="dataset-service", dataset_ids=["ds-dup"], details={"session_id": "s-1"})
    first = client.send_sync(t)
    again = client.send_sync(t)
    assert first["seq"] == again["seq"] and again["status"] == "duplicate"
    other = make_trace("END_SESSION", caller="dataset-service", id=t.id, dataset_ids=["ds-dup"],
                       details={"session_id": "s-2"})
    with pytest.raises(TraceRejected) as e:
        client.send_sync(other)
    assert e.value.status_code == 409
    r = httpx.get(tracer.url + "/traces", headers=auth(hub_server, "audrey"), params={"dataset": "ds-dup"})
    assert [x["trace"] for x in r.json()["traces"]] == [t.canonical_dict()]


async def test_concurrent_posts_anchor_filter_page_export_and_verify(tracer, hub_server, anvil, tmp_path):
    import asyncio

    client = TracerClient(tracer.url, hub_server.token_for("dataset-service"))
    p = uuid.uuid4().hex[:8] + "-"
    ts = new_traces(120, datasets=4, prefix=p)
    old = make_trace("REQUEST_EXPORT", caller="dataset-service", user=pseudonym(p + "bob", PSEUDONYM_KEY),
                     dataset_ids=[p + "ds-old"], time=datetime.now(timezone.utc) - timedelta(days=3650))
    received = tracer.metrics().get("tracer_traces_received_total", 0)
    answers = await asyncio.gather(*(client.send(t) for t in ts + [old]))
    seqs = sorted(a["seq"] for a in answers)
    assert seqs == list(range(seqs[0], seqs[0] + 121)) and all(a["status"] == "accepted" for a in answers)
    h = auth(hub_server, "audrey")
    wait_until(lambda: tracer.metrics().get("tracer_pending_traces") == 0, what="everything anchored")
    m = tracer.metrics()
    assert m["tracer_traces_received_total"] == received + 121 and m["tracer_batches_anchored_total"] >= 1
    assert m["tracer_oldest_pending_age_seconds"] == 0
    # filters
    q = lambda **p: httpx.get(tracer.url + "/traces", headers=h, params=p).json()  # noqa: E731
    assert {r["trace"]["dataset_ids"][0] for r in q(dataset=p + "ds-1", limit=1000)["traces"]} == {p + "ds-1"}
    assert len(q(dataset=p + "ds-1", limit=1000)["traces"]) == 30
    u = pseudonym(p + "user1", PSEUDONYM_KEY)
    assert len(q(user=u, limit=1000)["traces"]) == 40
    assert len(q(user=u, dataset=p + "ds-1", limit=1000)["traces"]) == 10
    assert len(q(user=u, action="USE_DATASETS", limit=1000)["traces"]) == 40
    assert q(user=u, action="GRANT_ACCESS", limit=1000)["traces"] == []
    assert q(user=u, caller="insitu-hub")["traces"] == []
    assert [r["trace"]["id"] for r in q(dataset=p + "ds-old", action="REQUEST_EXPORT")["traces"]] == [str(old.id)]
    since = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    assert len(q(user=u, since=since, limit=1000)["traces"]) == 40
    until = (datetime.now(timezone.utc) - timedelta(days=3000)).isoformat()
    assert [r["trace"]["id"] for r in q(until=until)["traces"]] == [str(old.id)]
    assert httpx.get(tracer.url + "/traces", headers=h, params={"action": "NOPE"}).status_code == 422
    assert httpx.get(tracer.url + "/traces", headers=h, params={"since": "2026-01-01T00:00:00"}).status_code == 422
    # cursor paging visits every trace once, in order
    seen, cursor = [], None
    while True:
        page = q(limit=50, **({"cursor": cursor} if cursor else {}))
        seen += [r["seq"] for r in page["traces"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(range(1, seen[-1] + 1)) and seen[-1] >= seqs[-1]
    one = httpx.get(f"{tracer.url}/traces/{ts[5].id}", headers=h).json()
    assert one["status"] == "anchored" and one["proof"] is not None and one["anchor"]["tx_hash"].startswith("0x")
    assert httpx.get(f"{tracer.url}/traces/{uuid.uuid4()}", headers=h).status_code == 404
    # export as JSON lines -> the offline verifier, with the chain alone
    export = httpx.get(tracer.url + "/traces", headers=h, params={"format": "jsonl"}).text
    records = [json.loads(line) for line in export.splitlines()]
    assert len(records) == seen[-1]
    info = httpx.get(tracer.url + "/anchor", headers=h).json()
    rep = verify_against_chain(records, anvil.url, info["contract_address"])
    assert rep.ok and rep.verified == len(records), rep.errors
