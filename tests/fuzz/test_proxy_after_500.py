"""Issue 19 item 2: a 500 must not break the next request of another user through the hub's proxy.

configurable-http-proxy keeps its upstream connections alive. Before the fix, Starlette sent the 500
and re-raised, uvicorn then logged the traceback and closed the socket, and the proxy sent the next
caller's request down that socket: the caller got the hub's 503 page and the request was lost. Now
every unhandled error answers a 500 with ``Connection: close`` (``insitu.httpapi``).

The fault is a route added to the running app by this test only (nothing in the product serves it),
reached like every other route, through the real hub's real proxy. Both callers keep their
connections to the proxy alive, as browsers and API clients do.
"""
from __future__ import annotations

import httpx

from fixtures.governance_stack import PREFIX

FAULT = f"{PREFIX}/api/test-only/fault"


def test_a_500_does_not_break_the_next_request_of_another_user(governance_stack):
    st = governance_stack

    def fault():
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    if not any(getattr(r, "path", None) == FAULT for r in st.app.routes):
        st.app.add_api_route(FAULT, fault, methods=["GET"], include_in_schema=False)

    stranger = httpx.Client(base_url=st.public, timeout=30)  # anonymous
    alice = httpx.Client(base_url=st.public, timeout=30, headers={"Authorization": f"token {st.token('alice')}"})
    dora = httpx.Client(base_url=st.public, timeout=30, headers={"Authorization": f"token {st.token('dora')}"})
    runs_before = st.sql("select count(*) from index_runs")[0][0]
    try:
        results, faults = [], []
        for i in range(10):
            faults.append(stranger.get("/api/test-only/fault"))
            read = alice.get("/api/datasets")
            faults.append(stranger.get("/api/test-only/fault"))
            write = dora.post("/api/index-runs")
            results.append((read.status_code, write.status_code))
        assert results == [(200, 202)] * 10, results
        for bad in faults:
            assert bad.status_code == 500, bad.text
            assert bad.json() == {"detail": "internal error: the request was not completed"}
            assert bad.headers.get("connection", "").lower() == "close"
        # every one of her ten index runs was carried out (recorded), none lost to a broken connection
        assert st.sql("select count(*) from index_runs")[0][0] == runs_before + 10
    finally:
        for c in (stranger, alice, dora):
            c.close()
