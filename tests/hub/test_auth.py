"""Local accounts: argon2 hashes, groups from a YAML file, refusal without a role.

The pure parts are tested directly; the login itself through a real JupyterHub
(configurable-http-proxy included) with the login form and its XSRF token.
"""

from __future__ import annotations

import re
import textwrap

import httpx
import pytest

from fixtures.jupyterhub import start_hub
from hub.auth import (
    LocalAccountsAuthenticator,
    hash_password,
    insitu_groups,
    parse_users,
    verify_password,
    write_users_file,
)


def test_hash_is_argon2id_and_verifies_only_the_password():
    h = hash_password("s3cret-pass")
    assert h.startswith("$argon2id$")
    assert "s3cret-pass" not in h
    assert verify_password(h, "s3cret-pass")
    assert not verify_password(h, "s3cret-pasS")
    assert not verify_password(h, "")
    assert not verify_password("not-a-hash", "s3cret-pass")


def test_insitu_groups_keeps_roles_and_projects_only():
    got = insitu_groups(["researchers", "/project-lung", "/projects/project-brain", "staff",
                         "project-", "project-BAD", "/offline_access", 7, "admins"])
    assert got == ["admins", "project-brain", "project-lung", "researchers"]


def test_users_file_rejects_plain_passwords_and_bad_names():
    with pytest.raises(ValueError, match="argon2"):
        parse_users("users: {alice: {password_hash: hunter2, groups: [researchers]}}")
    with pytest.raises(ValueError, match="invalid user name"):
        parse_users(f"users: {{'../x': {{password_hash: '{hash_password('x')}'}}}}")
    with pytest.raises(ValueError, match="password_hash"):
        parse_users("users: {alice: {groups: [researchers]}}")


async def test_authenticate_against_file(tmp_path):
    f = tmp_path / "users.yaml"
    write_users_file(f, {"alice": ("pw-alice", ["researchers", "project-lung", "other"]),
                         "nobody": ("pw-nobody", ["project-lung"])})
    assert f.stat().st_mode & 0o777 == 0o600
    auth = LocalAccountsAuthenticator(users_file=str(f))
    model = await auth.authenticate(None, {"username": "alice", "password": "pw-alice"})
    assert model == {"name": "alice", "groups": ["project-lung", "researchers"], "admin": False}
    assert await auth.authenticate(None, {"username": "alice", "password": "pw-bob"}) is None
    assert await auth.authenticate(None, {"username": "mallory", "password": "pw-alice"}) is None
    from tornado.web import HTTPError
    with pytest.raises(HTTPError) as err:
        await auth.authenticate(None, {"username": "nobody", "password": "pw-nobody"})
    assert err.value.status_code == 403
    assert not await auth.check_allowed("nobody", None)
    assert not await auth.check_allowed("mallory", None)
    assert await auth.check_allowed("alice", None)

    # the file is re-read when it changes: a removed account is gone
    write_users_file(f, {"nobody": ("pw-nobody", ["project-lung"])})
    assert await auth.authenticate(None, {"username": "alice", "password": "pw-alice"}) is None


def _login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    r = client.get("/hub/login")
    r.raise_for_status()
    m = re.search(r'name="_xsrf"\s+value="([^"]+)"', r.text)
    data = {"username": username, "password": password}
    if m:
        data["_xsrf"] = m.group(1)
    client.last = client.post("/hub/login?next=/hub/home", data=data)
    return client


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    work = tmp_path_factory.mktemp("localhub")
    users = work / "users.yaml"
    write_users_file(users, {
        "alice": ("alice-pw", ["researchers", "project-lung"]),
        "root1": ("root1-pw", ["admins"]),
        "nobody": ("nobody-pw", ["project-lung"]),
    })
    extra = textwrap.dedent(f"""
        c.JupyterHub.authenticator_class = "hub.auth.LocalAccountsAuthenticator"
        c.LocalAccountsAuthenticator.users_file = {str(users)!r}
        c.Authenticator.allowed_users = set()
        c.Authenticator.manage_groups = True
        c.Authenticator.auth_refresh_age = 1
    """)
    hub = start_hub(work, users={}, extra_config=extra)
    hub.users_path = users
    yield hub
    hub.stop()


def test_real_hub_local_login_syncs_groups(local_hub):
    c = _login(local_hub.url, "alice", "alice-pw")
    assert c.last.status_code == 302, local_hub.log()
    assert c.last.headers["location"].endswith("/hub/home")
    assert c.get("/hub/home").status_code == 200
    model = local_hub.api("GET", "/users/alice").json()
    assert sorted(model["groups"]) == ["project-lung", "researchers"]
    assert model["admin"] is False

    c = _login(local_hub.url, "root1", "root1-pw")
    assert c.last.status_code == 302
    assert local_hub.api("GET", "/users/root1").json()["admin"] is True


def test_real_hub_refuses_wrong_password_and_users_without_role(local_hub):
    c = _login(local_hub.url, "alice", "wrong")
    assert c.last.status_code == 403
    r = c.get("/hub/home")  # no session: sent back to the login page
    assert r.status_code == 302 and "/hub/login" in r.headers["location"]
    c = _login(local_hub.url, "nobody", "nobody-pw")
    assert c.last.status_code == 403
    assert "no insitu role" in c.last.text
    assert local_hub.api("GET", "/users/nobody").status_code == 404
