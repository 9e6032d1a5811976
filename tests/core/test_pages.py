"""insitu/pages.py: the page headers and the login redirect every service's pages share."""

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from typing import Annotated

from fastapi import Depends

from insitu.pages import LoginRequired, PageExit, install_page_exits, login_redirect, page_response

app = FastAPI()
install_page_exits(app)


def signed_in(request: Request) -> str:
    """A page dependency: the login of ``?user=``, the login redirect without one, 403 for 'mallory'."""
    user = request.query_params.get("user")
    if not user:
        raise LoginRequired(request, "/svc")
    if user == "mallory":
        raise PageExit(page_response("<p>not for you</p>", 403))
    return user


@app.get("/svc/mine")
def mine(user: Annotated[str, Depends(signed_in)]):
    return page_response(f"<p>{user}</p>")


@app.get("/svc/page")
def page():
    return page_response("<p>hello</p>", 418)


@app.get("/svc/private")
def private(request: Request):
    return login_redirect(request, "/svc")


def test_page_headers():
    r = TestClient(app).get("/svc/page")
    assert r.status_code == 418 and r.text == "<p>hello</p>" and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"] == "default-src 'self'; style-src 'self'; frame-ancestors 'none'"
    assert r.headers["referrer-policy"] == "same-origin"


def test_login_redirect_comes_back_to_the_page_and_its_query():
    r = TestClient(app).get("/svc/private?state=released&q=a b", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/svc/login?next=%2Fsvc%2Fprivate%3Fstate%3Dreleased%26q%3Da%2520b"
    assert TestClient(app).get("/svc/private", follow_redirects=False).headers["location"] == \
        "/svc/login?next=%2Fsvc%2Fprivate"


def test_a_dependency_ends_the_page_with_its_answer():
    c = TestClient(app)
    r = c.get("/svc/mine?x=1", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/svc/login?next=%2Fsvc%2Fmine%3Fx%3D1"
    r = c.get("/svc/mine?user=mallory")
    assert r.status_code == 403 and r.text == "<p>not for you</p>" and r.headers["x-frame-options"] == "DENY"
    r = c.get("/svc/mine?user=alice")
    assert r.status_code == 200 and r.text == "<p>alice</p>"
