"""Why a workspace session ended, on the audit trail: a start that failed is traced as START_FAILED
(not END_SESSION), and END_SESSION says stopped, revoked, invalidated, expired or crashed.

Real JupyterHub, real tracer, the dataset service's real API; the spawner side is the real
``DatasetSessionMixin`` talking to that service."""
from __future__ import annotations

import asyncio
import logging

import pytest

from hub.spawner_base import DatasetSessionMixin

from test_governance_api import granted, open_session, traces


@pytest.fixture
def st(governance_stack):
    return governance_stack


@pytest.fixture(autouse=True)
def _end_new_grants(governance_stack):
    """The stack is shared by every module: grants this test made end with it (test clean-up), so tests
    that count a user's usable datasets elsewhere are not affected."""
    st = governance_stack
    before = st.sql("select coalesce(max(id), 0) from access_grants")[0][0]
    open_before = {r[0] for r in st.sql("select id from work_sessions where closed_at is null")}
    yield
    st.sql("update access_grants set revoked_at = :now, revoked_by = 'test-cleanup', revoke_reason = 'test ended' "
           "where id > :b and revoked_at is null", now=__import__("datetime").datetime.now(
               __import__("datetime").timezone.utc), b=before)
    for (sid,) in st.sql("select id from work_sessions where closed_at is null"):
        if sid not in open_before:
            st.sql("update work_sessions set closed_at = :now where id = :i", i=sid,
                   now=__import__("datetime").datetime.now(__import__("datetime").timezone.utc))


def session_of(st, ds, user="alice", project="lung") -> str:
    r = open_session(st, user, project, [ds])
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def ends(st, ds) -> list[tuple[str, str]]:
    return [(t["trace"]["action"], t["trace"]["details"].get("reason")) for t in traces(st, dataset=ds)
            if t["trace"]["action"] in ("END_SESSION", "START_FAILED")]


def test_close_with_each_reason_and_failed_start(st):
    ds = st.add_dataset("Session end reasons")
    granted(st, ds)
    sids = {}
    for reason in ("stopped", "crashed", "failed_start"):
        sids[reason] = session_of(st, ds)
        with st.api("insitu-hub") as c:
            assert c.delete(f"/api/sessions/{sids[reason]}", params={"reason": reason}).status_code == 204
    assert ends(st, ds) == [("END_SESSION", "stopped"), ("END_SESSION", "crashed"), ("START_FAILED", "failed_start")]
    rows = dict(st.sql("select id, end_reason from work_sessions where id in (:a, :b, :c)",
                       a=sids["stopped"], b=sids["crashed"], c=sids["failed_start"]))
    assert rows == {v: k for k, v in sids.items()}
    # the default is "stopped"; an unknown reason is refused and changes nothing
    sid = session_of(st, ds)
    with st.api("insitu-hub") as c:
        r = c.delete(f"/api/sessions/{sid}", params={"reason": "bored"})
        assert r.status_code == 422 and "unknown end reason" in r.text
        assert c.get(f"/api/sessions/{sid}").json()["open"] is True
        assert c.delete(f"/api/sessions/{sid}").status_code == 204
    assert ends(st, ds)[-1] == ("END_SESSION", "stopped")


def test_uncovered_sessions_say_revoked_or_invalidated(st):
    from dataset_service.models import DatasetState
    from dataset_service.operations import transition

    ds_r, ds_i = st.add_dataset("End by revoke"), st.add_dataset("End by invalidation")
    _, grant_r = granted(st, ds_r)
    granted(st, ds_i)
    s_r, s_i = session_of(st, ds_r), session_of(st, ds_i)
    with st.api("dac1") as c:
        assert c.post(f"/api/grants/{grant_r}/revoke", json={"reason": "project closed"}).status_code == 200
    transition(st.app.state.settings, st.app.state.db, ds_i, DatasetState.invalidated, "dora", "consent withdrawn")
    with st.api("insitu-hub") as c:
        unc = {x["session_id"]: x for x in c.get("/api/sessions/uncovered").json()}
    assert unc[s_r]["end_reason"] == "revoked" and unc[s_i]["end_reason"] == "invalidated"
    # what the researcher reads in JupyterLab and on the hub's home: the dataset's name, then its id
    assert unc[s_r]["reason"] == f"End by revoke v1 ({ds_r}): grant revoked", unc[s_r]["reason"]
    assert unc[s_i]["reason"].startswith(f"End by invalidation v1 ({ds_i}): "), unc[s_i]["reason"]


class _Spawner(DatasetSessionMixin):
    log = logging.getLogger("test-spawner")


def test_spawner_traces_a_failed_start_and_a_crash(st):
    ds = st.add_dataset("Spawner end reasons")
    granted(st, ds)
    sp = _Spawner(dataset_service_url=st.base, dataset_service_token=st.token("insitu-hub"))
    # inside start(): the hub has _start_pending set; the spawner closes because the start failed
    sp.session_id = session_of(st, ds)
    sp._start_pending = True
    asyncio.run(sp.close_dataset_session())
    sp._start_pending = False
    # the server exited by itself: the hub skips stop() and runs the post-stop hook
    sp.session_id = session_of(st, ds)
    asyncio.run(sp.run_post_stop_hook())
    assert sp.session_id is None
    # an ordinary stop
    sp.session_id = session_of(st, ds)
    asyncio.run(sp.close_dataset_session())
    assert ends(st, ds) == [("START_FAILED", "failed_start"), ("END_SESSION", "crashed"), ("END_SESSION", "stopped")]
