"""One navigation across the platform: the catalogue's and the airlock's pages show the same bar as
the hub's home (``insitu.navigation``), entry for entry, for each role, with the way back home.

Real JupyterHub with the platform's pages (``hub.frontdoor``) and the real dataset service of
``governance_stack``; the hub's home is fetched after logging in with its own form, the service's
pages with the service's signed session cookie (as in test_web_pages.py). The tracer's bar is
checked in tests/tracer/test_tracer_web.py.
"""
from __future__ import annotations

import html
import re

import httpx
import pytest

from fixtures.jupyterhub import DEMO_PASSWORD
from insitu.navigation import platform_nav, roles_of

COOKIE = "insitu-dataset-service-session"
HUB_ONLY = {"Admin", "Token"}  # the hub's own pages, shown by JupyterHub's scopes


def bar(page: str) -> list[tuple[str, str]]:
    """(label, href) of the links in the page's main navigation (``<nav aria-label="Main">``)."""
    m = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    assert m, "no main navigation on the page"
    return [(html.unescape(re.sub(r"<[^>]+>", "", label)).strip(), html.unescape(href))
            for href, label in re.findall(r'<a href="([^"]*)"[^>]*>(.*?)</a>', m.group(1), re.S)]


def hub_home_bar(st, user: str) -> list[tuple[str, str]]:
    with httpx.Client(base_url=st.hub.url, timeout=30) as c:
        c.get("/hub/login")
        c.post("/hub/login", data={"username": user, "password": DEMO_PASSWORD, "_xsrf": c.cookies.get("_xsrf", "")})
        r = c.get("/hub/home")
        assert r.status_code == 200 and "/hub/login" not in str(r.url), (user, r.status_code, r.url)
        return [e for e in bar(r.text) if e[0] not in HUB_ONLY]


def service_bar(st, user: str, path: str) -> list[tuple[str, str]]:
    cookies = {COOKIE: st.app.state.hub_auth.session_value(st.token(user))}
    with httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False) as c:
        r = c.get(path)
        assert r.status_code == 200, (user, path, r.status_code, r.text[:300])
        return bar(r.text)


ROLES = {"alice": ["researchers", "project-lung"], "dora": ["data-managers"], "dac1": ["dac"],
         "audrey": ["auditors"], "admin": ["admins"]}


@pytest.mark.parametrize("user", sorted(ROLES))
def test_catalogue_and_hub_home_show_the_same_bar_for_each_role(governance_stack, user):
    st = governance_stack
    home = hub_home_bar(st, user)
    expected = [(e["label"], e["href"]) for e in platform_nav(roles_of(ROLES[user]))]
    assert home == expected, home
    assert home[0] == ("Home", "/hub/home")
    assert service_bar(st, user, "/") == home


@pytest.mark.parametrize("user", ["alice", "dora"])
def test_airlock_page_shows_the_same_bar_as_the_hub_home(governance_stack, user):
    st = governance_stack
    assert service_bar(st, user, "/exports") == hub_home_bar(st, user)


def test_a_bar_entry_only_for_the_roles_that_can_use_it(governance_stack):
    st = governance_stack
    alice = dict(service_bar(st, "alice", "/"))
    audrey = dict(service_bar(st, "audrey", "/"))
    assert "Audit trail" not in alice and "Committee" not in alice and "Data management" not in alice
    assert audrey.get("Audit trail") == "/services/tracer/" and "My requests" not in audrey
