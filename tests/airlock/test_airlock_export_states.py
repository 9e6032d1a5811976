"""``GET /api/users/{name}/exports``: the states of one user's export requests, for the workspace gateway.

The gateway answers JupyterLab's exports panel on the workspace's own origin (``hub/gateway_exports.py``)
and asks the airlock with the hub's service token (``insitu-hub``). Against the real stack: only that
service reads them, only the state fields leave, a project narrows them, bad input is a 422.
"""
from __future__ import annotations

import httpx

from airlock_files import png_bytes

KEYS = {"request_id", "draft_id", "project", "state", "approvals", "quorum", "decided_at"}


def _submit(a, user: str, project: str, name: str) -> str:
    a.write(user, name, png_bytes(30, 20), project)
    with a.api(user) as c:
        r = c.post("/api/exports", json={"files": [name], "justification": "a figure for the abstract",
                                         "project": project})
    assert r.status_code == 201, r.text
    return r.json()["request_id"]


def test_the_hub_service_reads_a_users_export_states_and_nobody_else(airlock_stack):
    a = airlock_stack
    # a researcher of both projects with no workspace session left by other tests (an open session in one
    # project makes the airlock export from that project's home only)
    a.st.hub.add_user("edda", ["researchers", "project-exports-a", "project-exports-b"])
    in_a = _submit(a, "edda", "exports-a", "states/a.png")
    in_b = _submit(a, "edda", "exports-b", "states/b.png")

    with a.api("insitu-hub") as c:
        every = c.get("/api/users/edda/exports")
        only_a = c.get("/api/users/edda/exports", params={"project": "exports-a"})
        nobody = c.get("/api/users/nobody-at-all/exports")
    assert every.status_code == 200, every.text
    rows = {r["request_id"]: r for r in every.json()}
    assert {in_a, in_b} <= set(rows)
    assert all(set(r) == KEYS for r in rows.values())  # the states, not the files, names or justification
    assert rows[in_a]["state"] == "pending" and rows[in_a]["approvals"] == 0 and rows[in_a]["project"] == "exports-a"
    assert {r["request_id"] for r in only_a.json()} >= {in_a} and in_b not in {r["request_id"] for r in only_a.json()}
    assert all(r["project"] == "exports-a" for r in only_a.json())
    assert nobody.status_code == 200 and nobody.json() == []

    with a.api("dora") as c:  # a reviewer decides: the service sees the new state
        assert c.post(f"/api/exports/{in_a}/reviews", json={"decision": "approve"}).status_code == 200
    with a.api("insitu-hub") as c:
        row = next(r for r in c.get("/api/users/edda/exports").json() if r["request_id"] == in_a)
    assert row["state"] == "approved" and row["approvals"] == 1 and row["decided_at"]

    # everyone else: the user herself, another researcher, a reviewer, an auditor, an admin, other services
    for who in ("edda", "cleo", "dora", "audrey", "admin", "dataset-service", "tracer", "insitu-admission"):
        with a.api(who) as c:
            r = c.get("/api/users/edda/exports")
        assert r.status_code == 403, (who, r.status_code, r.text)
    assert httpx.get(f"{a.st.base}/api/users/edda/exports", timeout=30).status_code == 401


def test_bad_input_is_a_422(airlock_stack):
    with airlock_stack.api("insitu-hub") as c:
        assert c.get("/api/users/edda/exports", params={"project": "../x"}).status_code == 422
        assert c.get("/api/users/" + "x" * 300 + "/exports").status_code == 422
