"""hub/guacamole.py against the Guacamole REST contract, served by a local mock
of the Guacamole web application. The web application (``guacamole.war``) and
its JDBC extension are in no registry this machine reaches (Maven Central has
only guacamole-common, guacamole-common-js and guacamole-ext), and guacd is in
none either, so the REST API stays a contract written from the documentation;
the connection parameters are checked against the real protocol definition in
guacamole-ext (test_guacamole_protocol.py)."""

from __future__ import annotations

import pytest

from hub.guacamole import LOCKDOWN_PARAMETERS, GuacamoleClient, GuacamoleError, connection_body

from .guacamole_mock import GuacamoleMock

ARGS = dict(name="insitu-desktop-alice-s-0001", user="alice", hostname="10.42.0.17", port=5901, vnc_password="vnc-one-time")


def client(mock):
    return GuacamoleClient(mock.url, "insitu-hub", "hub-secret")


async def test_create_connection_grants_read_to_the_user_only():
    with GuacamoleMock(["login", "create_connection", "grant", "logout"]) as mock:
        ident = await client(mock).create_desktop_connection(**ARGS)
    mock.assert_complete()
    assert ident == "17"
    # exactly one permission change, for alice, READ on this connection only
    patches = [r for r in mock.seen if r["method"] == "PATCH"]
    assert len(patches) == 1 and patches[0]["path"].endswith("/users/alice/permissions")
    assert patches[0]["json"] == [{"op": "add", "path": "/connectionPermissions/17", "value": "READ"}]


async def test_connection_has_transfer_and_copy_off():
    """(Drive and printing: the VNC protocol has none, test_guacamole_protocol.py.)"""
    with GuacamoleMock(["login", "create_connection", "grant", "logout"]) as mock:
        await client(mock).create_desktop_connection(**ARGS)
    params = mock.seen[1]["json"]["parameters"]
    assert params["disable-copy"] == "true"
    assert params["enable-sftp"] == "false"
    assert params["sftp-disable-download"] == "true" and params["sftp-disable-upload"] == "true"


async def test_unknown_user_is_created_then_granted():
    with GuacamoleMock(["login", "create_connection", "grant_no_user", "create_user", "grant", "logout"]) as mock:
        ident = await client(mock).create_desktop_connection(**ARGS)
    mock.assert_complete()
    assert ident == "17"
    assert len(mock.seen[3]["json"]["password"]) >= 32


async def test_failed_grant_leaves_no_connection_behind():
    with GuacamoleMock(["login", "create_connection", "grant_forbidden", "delete_connection", "logout"]) as mock:
        with pytest.raises(GuacamoleError) as e:
            await client(mock).create_desktop_connection(**ARGS)
    mock.assert_complete()
    assert e.value.status == 403


async def test_delete_connection_and_already_gone():
    with GuacamoleMock(["login", "delete_connection", "logout"]) as mock:
        await client(mock).delete_connection("17")
    mock.assert_complete()
    with GuacamoleMock(["login", "delete_connection_gone", "logout"]) as mock:
        await client(mock).delete_connection("17")
    mock.assert_complete()


async def test_bad_admin_credentials_fail_loudly():
    with GuacamoleMock(["login_denied"]) as mock:
        with pytest.raises(GuacamoleError) as e:
            await client(mock).create_desktop_connection(**ARGS)
    mock.assert_complete()
    assert e.value.status == 403


async def test_mock_refuses_a_request_off_contract():
    """The mock is strict: a connection without the lock-down is refused."""
    with GuacamoleMock(["login", "create_connection"]) as mock:
        c = client(mock)
        import hub.guacamole as g

        orig = dict(g.LOCKDOWN_PARAMETERS)
        g.LOCKDOWN_PARAMETERS = {**orig, "disable-copy": "false"}
        try:
            with pytest.raises(GuacamoleError):
                await c.create_desktop_connection(**ARGS)
        finally:
            g.LOCKDOWN_PARAMETERS = orig
    assert mock.mismatches and "create_connection" in mock.mismatches[0]


async def test_unreachable_guacamole_is_an_error():
    c = GuacamoleClient("http://127.0.0.1:9/guacamole", "insitu-hub", "hub-secret", timeout=2)
    with pytest.raises(GuacamoleError):
        await c.create_desktop_connection(**ARGS)


def test_connection_body_refuses_bad_input():
    with pytest.raises(ValueError):
        connection_body("a/b", "h", 5901, "p")
    with pytest.raises(ValueError):
        connection_body("a", "h", 70000, "p")
    assert connection_body("a", "h", 5901, "p")["parameters"].items() >= LOCKDOWN_PARAMETERS.items()
