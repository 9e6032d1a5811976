"""A request sent back for changes is traced as RETURN_EXPORT, not as a rejection (real tracer)."""
from __future__ import annotations

from test_airlock_api import review, session, submit  # noqa: F401 (session: a module fixture)


def test_return_is_traced_as_its_own_action(airlock_stack, session):
    a = airlock_stack
    r = submit(a, "ayla", {"paper/fig-r.txt": b"a table of results"}, session[0])
    rid = r.json()["request_id"]
    assert review(a, "dora", rid, "return", "round the numbers").json()["state"] == "returned"
    mine = [t["trace"] for t in a.traces() if t["trace"]["details"].get("request_id") == rid]
    assert [t["action"] for t in mine] == ["REQUEST_EXPORT", "RETURN_EXPORT"]
    assert mine[1]["details"]["outcome"] == "returned" and "round the numbers" not in str(mine)
    # the requester is told, in the in-app list (and by e-mail when the platform has a mail server)
    with a.api("ayla") as c:
        items = c.get("/api/notifications").json()["items"]
    told = [n for n in items if n["kind"] == "export-reviewed" and n["link"] == f"/exports/{rid}"]
    assert told and told[0]["title"] == "Export request returned for changes" and "round the numbers" in told[0]["body"]
