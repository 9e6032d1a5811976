"""Notifications: who is told what, in-app (API and page, unread count) and by e-mail through a real
SMTP server on loopback (aiosmtpd). Real hub (group membership), real tracer, the service's real API."""
from __future__ import annotations

import datetime as dt
import email
import re
from contextlib import closing

import pytest
from aiosmtpd.controller import Controller

from dataset_service.notifications.mail import Mailer
from dataset_service.notifications.settings import NotifySettings
from test_governance_api import open_session


def browser(st, user):
    import httpx

    cookies = {"insitu-dataset-service-session": st.app.state.hub_auth.session_value(st.token(user))}
    return httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False)


@pytest.fixture
def st(governance_stack):
    return governance_stack


@pytest.fixture(autouse=True)
def _end_new_grants(governance_stack):
    """Grants made here end with the test (clean-up of the shared stack)."""
    st = governance_stack
    before = st.sql("select coalesce(max(id), 0) from access_grants")[0][0]
    yield
    st.sql("update access_grants set revoked_at = :now, revoked_by = 'test-cleanup' where id > :b and revoked_at "
           "is null", now=dt.datetime.now(dt.timezone.utc), b=before)


class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody-here@"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 Message accepted"

    def to(self, addr: str) -> list[str]:
        return [m["Subject"] for m in self.messages if m["To"] == addr]


@pytest.fixture
def smtp():
    inbox = Inbox()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = Controller(inbox, hostname="127.0.0.1", port=port)
    c.start()
    try:
        yield inbox, port
    finally:
        c.stop()


def mine(st, user, **params) -> dict:
    with st.api(user) as c:
        r = c.get("/api/notifications", params=params)
        assert r.status_code == 200, r.text
        return r.json()


def titles(st, user) -> list[str]:
    return [n["title"] for n in mine(st, user)["items"]]


def ask(st, ds, user="alice", project="lung", days=30):
    with st.api(user) as c:
        r = c.post("/api/access-requests", json={"dataset_id": ds, "project": project, "duration_days": days,
                                                 "purpose": "Segment tumours for a radiomics study."})
        assert r.status_code == 201, r.text
        return r.json()["id"]


def vote(st, user, rid, decision="approve", reason=""):
    with st.api(user) as c:
        r = c.post(f"/api/access-requests/{rid}/votes", json={"decision": decision, "reason": reason})
        assert r.status_code == 200, r.text


def test_request_decision_and_mail(st, smtp):
    inbox, port = smtp
    ds = st.add_dataset("Notify lung")
    rid = ask(st, ds)
    new = f"New access request #{rid}: Notify lung v1"
    assert new in titles(st, "dac1") and new in titles(st, "dac2")
    assert new not in titles(st, "dac3")  # a member of project lung cannot review it: not asked
    assert new not in titles(st, "alice") and new not in titles(st, "bob")
    with st.api("dac1") as c:
        assert c.post(f"/api/access-requests/{rid}/changes", json={"reason": "Name the tumour types."}
                      ).status_code in (200, 201)
    assert any(t.startswith(f"Changes asked for request #{rid}") for t in titles(st, "alice"))
    with st.api("alice") as c:
        assert c.post(f"/api/access-requests/{rid}/resubmit", json={
            "purpose": "Segment lung tumours (NSCLC) for a radiomics study.", "duration_days": 30}).status_code == 200
    assert f"Request #{rid} resubmitted (round 2): Notify lung v1" in titles(st, "dac2")
    vote(st, "dac1", rid)
    vote(st, "dac2", rid)
    got = mine(st, "alice")
    granted = [n for n in got["items"] if n["title"] == "Access granted: Notify lung v1"]
    assert granted and granted[0]["link"] == f"/requests/{rid}" and not granted[0]["read"]
    assert got["unread"] >= 2
    with st.api("alice") as c:
        assert c.get("/api/notifications/unread-count").json()["unread"] == got["unread"]
        r = c.post("/api/notifications/read", json={"ids": [granted[0]["id"]]})
        assert r.json() == {"marked": 1, "unread": got["unread"] - 1}
        assert c.post("/api/notifications/read", json={"ids": [granted[0]["id"]]}).json()["marked"] == 0
    with st.api("bob") as c:  # someone else's notification cannot be marked
        assert c.post("/api/notifications/read", json={"ids": [n["id"] for n in got["items"]]}).json()["marked"] == 0

    # e-mail through the operator's SMTP server
    ns = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, mail_domain="insitu.test",
                        public_url="https://insitu.example.org", run_worker=False)
    sent, failed = Mailer(ns, st.app.state.settings.service_prefix).send_pending(st.app.state.db)
    assert sent >= 4 and failed == 0
    assert "[insitu] Access granted: Notify lung v1" in inbox.to("alice@insitu.test")
    assert f"[insitu] {new}" in inbox.to("dac1@insitu.test") and f"[insitu] {new}" not in inbox.to("dac3@insitu.test")
    body = next(m for m in inbox.messages if m["To"] == "alice@insitu.test"
                and m["Subject"] == "[insitu] Access granted: Notify lung v1").get_payload()
    assert f"https://insitu.example.org/services/dataset-service/requests/{rid}" in body
    assert Mailer(ns, "").send_pending(st.app.state.db) == (0, 0)  # each notice is e-mailed once


def test_expiry_coming_and_workspace_stopped(st):
    ds = st.add_dataset("Notify expiry")
    rid = ask(st, ds, days=3)
    vote(st, "dac1", rid)
    vote(st, "dac2", rid)
    gov, notifier = st.app.state.governance, st.app.state.notifier
    with st.app.state.db.session() as s:
        assert notifier.expiry_sweep(s, gov) >= 2  # alice and carol: project lung
    with st.app.state.db.session() as s:
        notifier.expiry_sweep(s, gov)
    for user in ("alice", "carol"):
        ends = [t for t in titles(st, user) if t.startswith("Access to Notify expiry v1 ends in")]
        assert len(ends) == 1, (user, ends)  # told once, not at every sweep
    assert not [t for t in titles(st, "bob") if "Notify expiry" in t]
    # a workspace stopped because its grant was revoked: its user is told
    sid = open_session(st, "carol", "lung", [ds]).json()["session_id"]
    gid = st.sql("select id from access_grants where request_id = :r", r=rid)[0][0]
    with st.api("dac1") as c:
        assert c.post(f"/api/grants/{gid}/revoke", json={"reason": "project closed"}).status_code == 200
    with st.api("insitu-hub") as c:
        assert c.delete(f"/api/sessions/{sid}", params={"reason": "revoked"}).status_code == 204
    stopped = [n for n in mine(st, "carol")["items"] if n["kind"] == "workspace-stopped"]
    assert stopped and "revoked" in stopped[0]["body"]
    assert not [n for n in mine(st, "alice")["items"] if n["kind"] == "workspace-stopped"
                and "revoked" in n["body"] and n["created_at"] >= stopped[0]["created_at"]]


def test_notifications_page(st):
    with st.app.state.db.session() as s:
        st.app.state.notifier.notify(s, ["alice"], "export-reviewed", "Export request <approved>", "", "/exports/x")
    with browser(st, "alice") as c:
        page = c.get("/notifications")
        assert page.status_code == 200 and 'id="unread"' in page.text
        assert "Export request &lt;approved&gt;" in page.text and 'href="/services/dataset-service/exports/x"' in page.text
        tok = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
        assert c.post("/notifications/read", data={"csrf_token": tok}).status_code == 303
        assert "(0 unread)" in c.get("/notifications").text
        assert 'href="/services/dataset-service/notifications"' in c.get("/").text
    with st.api("alice") as c:
        assert c.get("/api/notifications/unread-count").json() == {"unread": 0}


def hub_browser(st, user):
    """A browser session on the hub itself (its login form), as a person opens the hub's home."""
    import httpx

    from fixtures.jupyterhub import DEMO_PASSWORD

    c = httpx.Client(base_url=st.hub.url, timeout=30, follow_redirects=False)
    c.get("/hub/login")
    r = c.post("/hub/login", data={"username": user, "password": DEMO_PASSWORD, "_xsrf": c.cookies.get("_xsrf", "")})
    assert r.status_code == 302 and "/hub/login" not in r.headers["location"], (r.status_code, r.headers)
    return c


def test_the_hub_home_lists_the_users_notifications_with_the_unread_count(st):
    """The hub's home page asks the dataset service as the user (a hub-made token of the user's own
    scopes): alice sees her notices and her unread count, bob sees none of hers; after she marks them
    read in the service, the count is gone from the home page."""
    with st.api("alice") as c:
        c.post("/api/notifications/read", json={})
    with st.app.state.db.session() as s:
        st.app.state.notifier.notify(s, ["alice"], "export-reviewed", "Export request <approved>: home", "ok",
                                     "/exports/home-1")
        st.app.state.notifier.notify(s, ["alice"], "grant-expiring", "Access to Home lung v1 ends in 3 day(s)")
    with closing(hub_browser(st, "alice")) as c:
        home = c.get("/hub/home")
        assert home.status_code == 200
        section = home.text[home.text.index('id="insitu-notifications"'):]
        assert '2 unread' in section
        assert "Export request &lt;approved&gt;: home" in section  # escaped, never markup
        assert 'href="/services/dataset-service/exports/home-1"' in section
        assert "Access to Home lung v1 ends in 3 day(s)" in section
        assert 'href="/services/dataset-service/notifications"' in section
        # the token the hub made is alice's, limited to the dataset service and her own name and groups
        r = st.hub.api("GET", "/users/alice/tokens")
        made = [t for t in r.json()["api_tokens"] if t["note"] == "insitu hub home: notifications"]
        assert made and set(made[0]["scopes"]) == {"access:services!service=dataset-service",
                                                   "read:users:name!user=alice", "read:users:groups!user=alice"}
        assert made[0]["expires_at"]
        c.get("/hub/home")  # a second visit reuses it
        assert len([t for t in st.hub.api("GET", "/users/alice/tokens").json()["api_tokens"]
                    if t["note"] == "insitu hub home: notifications"]) == 1
    with closing(hub_browser(st, "bob")) as c:
        home = c.get("/hub/home").text
        assert 'id="insitu-notifications"' in home and "Export request &lt;approved&gt;: home" not in home
    with st.api("alice") as c:
        assert c.post("/api/notifications/read", json={}).json()["unread"] == 0
    with closing(hub_browser(st, "alice")) as c:
        section = c.get("/hub/home").text.split('id="insitu-notifications"', 1)[1]
        assert "unread" not in section.split("</h2>", 1)[0]


def test_the_hub_home_fetch_gives_up_plainly_when_the_service_is_down(st):
    """No dataset service at the address (a closed loopback port): the home page's fetch answers "not ok"
    (the template then says the list cannot be shown) instead of failing the hub's page."""
    import asyncio

    from fixtures.jupyterhub import free_port
    from hub.home_notifications import HomeNotifications

    class User:  # the hub's user as the fetch sees it: a name and JupyterHub's token maker
        name = "alice"

        def new_api_token(self, **kw):
            return "not-a-token"

    got = asyncio.run(HomeNotifications(f"http://127.0.0.1:{free_port()}/services/dataset-service", timeout=2)(User()))
    assert got["ok"] is False and got["items"] == [] and got["unread"] == 0
    got = asyncio.run(HomeNotifications(st.base)(User()))  # a token the hub does not know: 401, not ok
    assert got["ok"] is False


def test_a_hub_that_cannot_name_the_recipients_tells_nobody_and_a_bug_is_not_hidden(tmp_path, caplog):
    """``Notifier.safe``: the hub down (HubUnavailable) records nothing and lets the action go on, with a log
    line; any other failure of the recipients' lookup is a bug and is raised."""
    from sqlalchemy import select

    from dataset_service.db import Database
    from dataset_service.notifications.models import Notification
    from dataset_service.notifications.service import Notifier
    from insitu.identity import HubUnavailable

    db = Database(f"sqlite:///{tmp_path}/n.db")
    db.upgrade()
    notifier = Notifier(directory=None)

    def hub_down():
        raise HubUnavailable("connection refused")

    def bug():
        raise KeyError("groups")

    with db.session() as s:
        assert notifier.safe(s, hub_down, "request-new", "A new request") == 0
        assert notifier.safe(s, lambda: ["ayla", "ayla", "bram"], "request-new", "A new request") == 2
        with pytest.raises(KeyError):
            notifier.safe(s, bug, "request-new", "A new request")
        assert sorted(s.scalars(select(Notification.user))) == ["ayla", "bram"]
    assert "request-new notification not recorded" in caplog.text
