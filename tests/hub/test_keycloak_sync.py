"""Keycloak membership reconciler: python-keycloak against the real admin API of
a real Keycloak (one per test session, tests/fixtures/keycloak.py, the chart's
realm imported unchanged plus the reconciler's service-account client), and the
effect on a real JupyterHub with real servers."""

from __future__ import annotations

import asyncio

import pytest
from test_reconciler import SPAWNER_CONFIG, _running, _start

from fixtures.jupyterhub import free_port, start_hub
from hub import keycloak_dev
from hub.keycloak_sync import KeycloakDirectory, KeycloakSync, plan_removals
from hub.reconciler import HubAPI

USERS = {"alice": ["researchers", "project-lung"], "bob": ["researchers", "project-brain"],
         "carol": ["researchers", "project-lung", "project-brain"], "dora": ["data-managers"]}


def _directory(kc, secret: str | None = None, url: str | None = None) -> KeycloakDirectory:
    return KeycloakDirectory.connect(url or kc.url, keycloak_dev.REALM, keycloak_dev.SYNC_CLIENT,
                                     secret or kc.sync_secret, timeout=10)


@pytest.fixture(scope="module")
def kc(keycloak):
    admin = keycloak.admin()
    for name, groups in USERS.items():
        keycloak_dev.ensure_user(admin, name, "sync-test-password", groups)
    return keycloak


def _ours(membership: dict[str, set[str]]) -> dict[str, set[str]]:
    return {g: members & set(USERS) for g, members in membership.items()}


def test_directory_reads_membership_through_python_keycloak(kc):
    got = _ours(_directory(kc).membership())
    assert got == {
        "researchers": {"alice", "bob", "carol"}, "data-managers": {"dora"}, "dac": set(),
        "auditors": set(), "admins": set(),
        "project-lung": {"alice", "carol"}, "project-brain": {"bob", "carol"},
    }
    # a disabled user is nobody's member
    admin = kc.admin()
    keycloak_dev.set_enabled(admin, "carol", False)
    try:
        got = _ours(_directory(kc).membership())
        assert "carol" not in got["researchers"] and "carol" not in got["project-lung"]
    finally:
        keycloak_dev.set_enabled(admin, "carol", True)


def test_wrong_client_secret_reads_nothing(kc):
    from keycloak.exceptions import KeycloakError

    with pytest.raises(KeycloakError) as refused:  # Keycloak's refusal, not any bug of ours
        _directory(kc, secret="wrong").membership()
    assert refused.value.response_code == 401, refused.value


def test_a_client_without_view_users_reads_nothing(kc):
    """The hub's login client has no service account: it cannot read the directory."""
    from keycloak.exceptions import KeycloakError

    with pytest.raises(KeycloakError) as refused:  # Keycloak's refusal, not any bug of ours
        KeycloakDirectory.connect(kc.url, keycloak_dev.REALM, keycloak_dev.HUB_CLIENT,
                                  kc.hub_secret(), timeout=10).membership()
    assert refused.value.response_code in (400, 401, 403), refused.value


def test_plan_removals():
    kcm = {"researchers": {"alice", "carol"}, "project-lung": {"alice"}, "dac": set()}
    users = [
        {"name": "alice", "groups": ["researchers", "project-lung"]},
        {"name": "carol", "groups": ["researchers", "project-lung", "unrelated"]},
        {"name": "zed", "groups": ["dac"]},
        {"name": "svc", "groups": []},
    ]
    assert plan_removals(kcm, users) == {"carol": {"project-lung"}, "zed": {"dac"}}


class _EmptyRealm:
    """A directory that answers, but with none of the role groups (a wrong realm or client)."""

    def membership(self):
        return {"staff": {"alice"}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = start_hub(tmp_path_factory.mktemp("kchub"), users=USERS, extra_config=SPAWNER_CONFIG)
    yield h
    h.stop()


def _groups(hub, user):
    return sorted(hub.api("GET", f"/users/{user}").json()["groups"])


def test_membership_removed_in_keycloak_stops_workspaces(hub, kc):
    _start(hub, "carol", "", {"project": "lung"})
    _start(hub, "carol", "brain", {"project": "brain"})
    _start(hub, "alice", "", {"project": "lung"})
    _start(hub, "bob", "", {"project": "brain"})
    token = hub.service_tokens["insitu-hub"]
    admin = kc.admin()
    sync = KeycloakSync(HubAPI(hub.api_url, token), _directory(kc))
    # in step: nothing happens
    report = asyncio.run(sync.run_once())
    assert report.error is None and report.removed == [] and report.stopped == []

    keycloak_dev.set_groups(admin, "carol", ["researchers", "project-brain"])  # carol leaves project lung
    keycloak_dev.set_enabled(admin, "alice", False)                            # alice is disabled
    try:
        report = asyncio.run(sync.run_once())
        assert report.error is None, report.error
        assert sorted(report.removed) == [("alice", "project-lung"), ("alice", "researchers"),
                                          ("carol", "project-lung")]
        assert sorted(report.stopped) == ["alice/", "carol/"]
        assert _groups(hub, "carol") == ["project-brain", "researchers"]
        assert _groups(hub, "alice") == []
        assert _running(hub, "carol") == {"brain"}   # the other project's workspace stays
        assert _running(hub, "alice") == set()
        assert _running(hub, "bob") == {""}
        assert _groups(hub, "dora") == ["data-managers"]

        # the sync only removes: carol back in project lung gets it at her next login, not here
        keycloak_dev.set_groups(admin, "carol", USERS["carol"])
        report = asyncio.run(sync.run_once())
        assert report.error is None and report.removed == [] and report.stopped == []
        assert _groups(hub, "carol") == ["project-brain", "researchers"]
    finally:
        keycloak_dev.set_enabled(admin, "alice", True)

    # a realm that answers without the role groups changes nothing
    report = asyncio.run(KeycloakSync(HubAPI(hub.api_url, token), _EmptyRealm()).run_once())
    assert "none of the role groups" in report.error and report.removed == []
    assert _running(hub, "bob") == {""}

    # Keycloak unreachable: nothing changes either
    gone = KeycloakSync(HubAPI(hub.api_url, token), _directory(kc, url=f"http://127.0.0.1:{free_port()}"))
    report = asyncio.run(gone.run_once())
    assert report.error and report.removed == [] and _running(hub, "bob") == {""}


def test_sync_refuses_a_token_without_the_needed_scopes(hub, kc):
    keycloak_dev.set_groups(kc.admin(), "bob", ["researchers"])
    try:
        weak = KeycloakSync(HubAPI(hub.api_url, hub.token_for("dora")), _directory(kc))
        report = asyncio.run(weak.run_once())
        assert "lacks the scopes" in report.error and report.removed == []
        assert "project-brain" in _groups(hub, "bob")
    finally:
        keycloak_dev.set_groups(kc.admin(), "bob", USERS["bob"])
