"""The auditor's web pages of the tracer, against a real JupyterHub (OAuth login
through its proxy), a real ``python -m tracer serve`` and a real anvil chain.

The tracer is a hub service with a browser OAuth client, reached through the
hub's proxy at ``/services/tracer/``. Most tests carry a hub token of the user
in the tracer's signed session cookie (every token is still resolved by the hub); the
first one logs in through the full OAuth code flow. The tampering test edits
the tracer's own SQLite database under the running service.
"""
from __future__ import annotations

import html
import os
import re
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fixtures.jupyterhub import DEMO_PASSWORD, REPO, start_hub
from fixtures.artifacts import TEST_ARTIFACTS
from insitu.trace_client import TracerClient, make_trace, pseudonym
from tracer.devchain import DEV_KEYS, free_port
from tracer.verify import read_records, verify_against_chain

from tracer_helpers import PSEUDONYM_KEY, TracerProcess, wait_until

PREFIX = "/services/tracer"
COOKIE = "insitu-tracer-session"
SHOTS = TEST_ARTIFACTS / "tracer"


@pytest.fixture(scope="module")
def web(tmp_path_factory, anvil):
    workdir = tmp_path_factory.mktemp("tracer-web")
    port = free_port()
    hub = start_hub(workdir / "hub", services=[{
        "name": "tracer", "url": f"http://127.0.0.1:{port}", "oauth_client_id": "service-tracer",
        "oauth_redirect_uri": f"{PREFIX}/oauth_callback", "oauth_no_confirm": True,
        "timeout": 1,  # the tracer starts after the hub: do not wait 30 s for it at hub start
    }])
    (workdir / "tracer.key").write_text(DEV_KEYS[0] + "\n")
    tp = TracerProcess(workdir, {
        "TRACER_DATABASE_URL": f"sqlite:///{workdir / 'tracer.sqlite'}",
        "TRACER_CHAIN_URL": anvil.url, "TRACER_KEY_FILE": str(workdir / "tracer.key"),
        "TRACER_HUB_API_URL": hub.api_url, "TRACER_BATCH_WAIT": "0.05", "TRACER_RECEIPT_TIMEOUT": "5",
        "JUPYTERHUB_API_TOKEN": hub.token_for("tracer"), "JUPYTERHUB_CLIENT_ID": "service-tracer",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}/oauth_callback", "JUPYTERHUB_SERVICE_NAME": "tracer",
        "JUPYTERHUB_PUBLIC_HUB_URL": "",
    }, port, platform_token=hub.token_for("insitu-hub"))
    try:
        tp.start()
        ds = TracerClient(tp.url, hub.token_for("dataset-service"))
        hubsvc = TracerClient(tp.url, hub.token_for("insitu-hub"))
        alice, bob = pseudonym("alice", PSEUDONYM_KEY), pseudonym("bob", PSEUDONYM_KEY)
        t = {
            "old": make_trace("USE_DATASETS", caller="dataset-service", user=alice, dataset_ids=["web-a"],
                              time=datetime(2025, 1, 10, 10, 0, tzinfo=timezone.utc)),
            "grant": make_trace("GRANT_ACCESS", caller="dataset-service", dataset_ids=["web-b"],
                                time=datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)),
            "end": make_trace("END_SESSION", caller="insitu-hub", user=bob, dataset_ids=["web-a"]),
            "tamper": make_trace("USE_DATASETS", caller="dataset-service", user=bob, dataset_ids=["web-c"],
                                 details={"session_id": "s-tamper"}),
        }
        uses = [make_trace("USE_DATASETS", caller="dataset-service", user=bob, dataset_ids=["web-a"],
                           details={"session_id": f"s-{i}"}) for i in range(4)]
        for key in ("old", "grant", "tamper"):
            ds.send_sync(t[key])
        for u in uses:
            ds.send_sync(u)
        hubsvc.send_sync(t["end"])
        audrey = {"Authorization": f"token {hub.token_for('audrey')}"}
        wait_until(lambda: all(r["status"] == "anchored" for r in read_records(
            httpx.get(tp.url + "/traces", headers=audrey, params={"format": "jsonl"}).text)), what="anchoring")
        yield {"hub": hub, "tracer": tp, "t": t, "uses": uses, "db": workdir / "tracer.sqlite", "alice": alice,
               "bob": bob, "chain": anvil.url}
    finally:
        tp.stop()
        hub.stop()


def session(web, user: str) -> str:
    """The signed session cookie the tracer would set for ``user`` (signed with a key of the tracer alone)."""
    from insitu.identity import HubAuthConfig, ServiceAuth

    hub = web["hub"]
    auth = ServiceAuth(HubAuthConfig(api_url=hub.api_url, api_token=hub.token_for("tracer"), service_name="tracer"))
    return auth.session_value(hub.token_for(user))


def page(web, user: str | None) -> httpx.Client:
    cookies = {COOKIE: session(web, user)} if user else {}
    return httpx.Client(base_url=web["tracer"].url, cookies=cookies, timeout=30, follow_redirects=False)


def seqs(text: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', text)]


@contextmanager
def hub_login(web, user: str):
    """A browser-like client logged in on the hub's own login page."""
    hub = web["hub"]
    with httpx.Client(follow_redirects=True, timeout=30) as c:
        form = c.get(hub.url + "/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text).group(1)
        c.post(hub.url + "/hub/login", data={"username": user, "password": DEMO_PASSWORD, "_xsrf": xsrf})
        yield c


def test_login_through_the_hub_and_only_auditors_see_the_pages(web):
    hub = web["hub"]
    tid = web["t"]["grant"].id
    # anonymous: sent to the tracer's login, which sends the browser to the hub's OAuth
    for path in ("/", f"/trace/{tid}", "/?action=GRANT_ACCESS"):
        with page(web, None) as c:
            r = c.get(path)
        assert r.status_code == 302, path
        assert r.headers["location"].startswith(f"{PREFIX}/login?next=")
    with httpx.Client(timeout=30) as c:
        r = c.get(hub.url + PREFIX + "/login", params={"next": PREFIX + "/"})
        assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["location"]
    # the full OAuth code flow through the hub's proxy: auditor in, researcher refused with a page
    with hub_login(web, "audrey") as c:
        r = c.get(hub.url + PREFIX + "/")
        assert r.status_code == 200 and str(r.url) == hub.url + PREFIX + "/"
        assert COOKIE in c.cookies and "<h1>Traces</h1>" in r.text and "audrey" in r.text
        assert len(seqs(r.text)) == 8
        assert c.get(hub.url + PREFIX + f"/trace/{tid}").status_code == 200
    with hub_login(web, "alice") as c:
        r = c.get(hub.url + PREFIX + "/")
        assert r.status_code == 403 and "Not for your role" in r.text and "auditors" in r.text
        assert "text/html" in r.headers["content-type"] and not seqs(r.text)
        assert c.get(hub.url + PREFIX + f"/trace/{tid}").status_code == 403
        assert c.get(hub.url + PREFIX + "/traces", params={"format": "jsonl"}).status_code == 403
    for user, code in [("audrey", 200), ("admin", 200), ("alice", 403), ("dora", 403), ("nobody", 403)]:
        with page(web, user) as c:
            r = c.get("/")
            assert r.status_code == code, user
            assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in \
                r.headers["content-security-policy"]
            assert c.get(f"/trace/{tid}").status_code == code, user
    # a cookie the hub does not know is no login
    with httpx.Client(base_url=web["tracer"].url, cookies={COOKIE: "forged"}, follow_redirects=False) as c:
        assert c.get("/").status_code == 302
    with page(web, None) as c:
        r = c.get("/static/tracer.css")
        assert r.status_code == 200 and "text/css" in r.headers["content-type"]


def test_filters_paging_and_export(web):
    t, uses = web["t"], web["uses"]
    with page(web, "audrey") as c:
        everything = seqs(c.get("/").text)
        assert len(everything) == 8 and everything == sorted(everything)
        grant = c.get("/", params={"action": "GRANT_ACCESS"}).text
        assert len(seqs(grant)) == 1 and str(t["grant"].id) in grant and "web-b" in grant
        assert 'value="GRANT_ACCESS" selected' in grant
        web_a = seqs(c.get("/", params={"dataset": "web-a"}).text)
        assert len(web_a) == 6  # old, end and the four uses
        both = seqs(c.get("/", params={"dataset": "web-a", "user": web["bob"]}).text)
        assert len(both) == 5
        assert len(seqs(c.get("/", params={"user": web["alice"]}).text)) == 1
        hub_only = c.get("/", params={"caller": "insitu-hub"}).text
        assert len(seqs(hub_only)) == 1 and "END_SESSION" in hub_only
        # time range: datetime-local values are UTC; 'until' is exclusive
        early = seqs(c.get("/", params={"since": "2025-01-01T00:00", "until": "2025-03-01T09:30"}).text)
        assert len(early) == 1
        assert len(seqs(c.get("/", params={"since": "2025-01-01T00:00", "until": "2025-03-01T09:31"}).text)) == 2
        assert len(seqs(c.get("/", params={"since": "2025-06-01T00:00:00Z"}).text)) == 6
        assert not seqs(c.get("/", params={"dataset": "no-such-dataset"}).text)
        # the anchor state: anchored, block number and transaction hash in each row
        row = re.search(r'<tr data-seq="\d+">.*?</tr>', grant, re.S).group(0)
        assert "anchored" in row and re.search(r"block \d+", row) and re.search(r"0x[0-9a-f]{16}", row)

        # cursor paging: pages of 2 walk the same traces once each
        walked, params = [], {"dataset": "web-a", "limit": "2"}
        while True:
            r = c.get("/", params=params)
            assert r.status_code == 200
            walked += seqs(r.text)
            m = re.search(r'id="next" href="([^"]+)"', r.text)
            if not m:
                break
            params = parse_qs(urlsplit(html.unescape(m.group(1))).query)
            assert params["dataset"] == ["web-a"] and params["limit"] == ["2"]
        assert walked == web_a

        # bad filters: a 400 page with the reason
        for bad, word in [({"action": "DROP"}, "action"), ({"since": "yesterday"}, "since"),
                          ({"cursor": "-1"}, "cursor"), ({"limit": "0"}, "limit"), ({"dataset": "x" * 200}, "dataset")]:
            r = c.get("/", params=bad)
            assert r.status_code == 400 and word in r.text and not seqs(r.text), bad

        # the export link of the current filter: JSON lines the offline verifier accepts
        r = c.get("/", params={"dataset": "web-a", "since": "2025-01-01T00:00"})
        href = html.unescape(re.search(r'id="export" href="([^"]+)"', r.text).group(1))
        assert "format=jsonl" in href and "since=2025-01-01T00%3A00%3A00.000000Z" in href
        export = c.get(href.removeprefix(PREFIX))
        assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
        records = read_records(export.text)
        assert [rec["seq"] for rec in records] == web_a
        contract = c.get("/anchor", headers={"Authorization": f"token {web['hub'].token_for('audrey')}"}).json()
        report = verify_against_chain(records, web["chain"], contract["contract_address"], partial=True)
        assert report.ok and report.verified == 6, report.errors


def test_detail_page_verifies_against_the_chain(web):
    tid = str(web["t"]["grant"].id)
    audrey = {"Authorization": f"token {web['hub'].token_for('audrey')}"}
    rec = httpx.get(f"{web['tracer'].url}/traces/{tid}", headers=audrey).json()
    with page(web, "audrey") as c:
        r = c.get(f"/trace/{tid}")
        assert r.status_code == 200
        text = html.unescape(r.text)
        assert 'data-result="verified"' in text and "Verified against the chain" in text
        canonical = re.search(r'<pre class="canonical" id="canonical">(.*?)</pre>', text, re.S).group(1)
        from insitu.trace import canonical_json
        assert canonical.encode() == canonical_json(rec["trace"])
        for h in [rec["leaf"], rec["anchor"]["root"], rec["anchor"]["tx_hash"], *(rec["proof"] or [])]:
            assert h in text
        assert text.count(rec["anchor"]["root"]) >= 3  # root from the proof, tracer's root, chain's root
        assert f"{rec['anchor']['block_number']} (chain: {rec['anchor']['block_number']})" in text
        assert "differs" not in text
        # a malformed or unknown id: a 4xx page, not a crash
        assert c.get("/trace/not-a-uuid").status_code == 400
        assert c.get("/trace/00000000-0000-4000-8000-000000000000").status_code == 404
    if os.path.exists("/usr/bin/chromium"):
        screenshot(web, [("/", "traces"), ("/?dataset=web-a&limit=3", "traces-filtered"), (f"/trace/{tid}", "trace")])


def test_tampered_record_is_flagged(web):
    t = web["t"]["tamper"]
    with page(web, "audrey") as c:
        assert 'data-result="verified"' in c.get(f"/trace/{t.id}").text
        # someone with access to the tracer's database rewrites the anchored record
        with sqlite3.connect(web["db"]) as db:
            n = db.execute("update traces set canonical = replace(canonical, 's-tamper', 's-other') where id = ?",
                           (str(t.id),)).rowcount
        assert n == 1
        r = c.get(f"/trace/{t.id}")
        text = html.unescape(r.text)
        assert r.status_code == 200 and 'data-result="failed"' in text and 'data-result="verified"' not in text
        assert "s-other" in text and "differs" in text
        assert "the proof does not lead to the root anchored on the chain" in text
        # the other traces still verify
        assert 'data-result="verified"' in c.get(f"/trace/{web['t']['grant'].id}").text
    if os.path.exists("/usr/bin/chromium"):
        screenshot(web, [(f"/trace/{t.id}", "trace-tampered")])


def screenshot(web, pages):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
        try:
            ctx = b.new_context(viewport={"width": 1360, "height": 900})
            ctx.add_cookies([{"name": COOKIE, "value": session(web, "audrey"), "domain": "127.0.0.1",
                              "path": PREFIX}])
            pg = ctx.new_page()
            for path, name in pages:
                pg.goto(web["tracer"].url + path)
                pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        finally:
            b.close()


def test_the_audit_trail_shows_the_platforms_bar_with_the_way_home(web):
    """The same bar as the hub's home and the catalogue (``insitu.navigation``): Home first, the audit
    trail marked as the current page, entries only for the user's roles."""
    from insitu.navigation import platform_nav

    for user, roles in [("audrey", {"auditors"}), ("admin", {"admins"})]:
        with page(web, user) as c:
            text = c.get("/").text
        nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', text, re.S).group(1)
        links = [(label.strip(), href) for href, label in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', nav)]
        assert links == [(e["label"], e["href"]) for e in platform_nav(roles)], (user, links)
        assert links[0] == ("Home", "/hub/home")
        assert re.findall(r'<a href="([^"]*)" aria-current="page">', nav) == [PREFIX + "/"], nav
        if user == "audrey":  # an auditor: no researcher's or manager's entries
            assert "My requests" not in dict(links) and "Data management" not in dict(links)
