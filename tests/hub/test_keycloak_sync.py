"""Keycloak membership reconciler: python-keycloak against the recorded admin
API contract (served by a mock, Keycloak cannot run here), and the effect on a
real JupyterHub with real servers."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_reconciler import SPAWNER_CONFIG, _running, _start


def _load_mock():
    """tests/hub/contracts/keycloak_admin_mock.py, by path (``contracts`` is a common name)."""
    name = "insitu_keycloak_admin_mock"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent / "contracts" / "keycloak_admin_mock.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


KeycloakAdminMock, load_contract = _load_mock().KeycloakAdminMock, _load_mock().load_contract

from fixtures.jupyterhub import start_hub
from hub.keycloak_sync import KeycloakDirectory, KeycloakSync, plan_removals
from hub.reconciler import HubAPI

CONTRACT = load_contract()
CLIENT = CONTRACT["client"]


def _directory(kc: KeycloakAdminMock, secret: str | None = None) -> KeycloakDirectory:
    return KeycloakDirectory.connect(kc.url, kc.realm_name, CLIENT["client_id"],
                                     secret or CLIENT["client_secret"], timeout=5)


def test_mock_answers_in_the_recorded_shapes():
    """The mock's representations have exactly the keys of the recorded examples."""
    with KeycloakAdminMock() as kc:
        r = httpx.post(kc.url + f"/realms/{kc.realm_name}/protocol/openid-connect/token",
                       data={"grant_type": "client_credentials", **CLIENT})
        assert r.status_code == 200
        examples = {ep["name"]: ep["response"]["example"] for ep in CONTRACT["endpoints"]}
        assert set(r.json()) == set(examples["token"])
        h = {"Authorization": "Bearer " + r.json()["access_token"]}
        top = httpx.get(kc.url + f"/admin/realms/{kc.realm_name}/groups", headers=h).json()
        assert all(set(g) == set(examples["top-level groups"][0]) for g in top)
        projects = next(g for g in top if g["name"] == "projects")
        kids = httpx.get(kc.url + f"/admin/realms/{kc.realm_name}/groups/{projects['id']}/children",
                         headers=h).json()
        assert [k["path"] for k in kids] == ["/projects/project-lung", "/projects/project-brain"]
        assert all(set(k) == set(examples["group children"][0]) for k in kids)
        members = httpx.get(kc.url + f"/admin/realms/{kc.realm_name}/groups/{kids[0]['id']}/members",
                            headers=h).json()
        assert {m["username"] for m in members} == {"alice", "carol"}
        assert all(set(m) == set(examples["group members"][0]) for m in members)
        # outside the contract: refused and recorded
        assert httpx.get(kc.url + f"/admin/realms/{kc.realm_name}/groups").status_code == 401
        assert httpx.get(kc.url + f"/admin/realms/{kc.realm_name}/users", headers=h).status_code == 400
        assert len(kc.violations) == 1


def test_directory_reads_membership_through_python_keycloak():
    with KeycloakAdminMock() as kc:
        got = _directory(kc).membership()
        assert kc.violations == []
        assert got == {
            "researchers": {"alice", "bob", "carol"}, "data-managers": {"dora"}, "dac": set(),
            "auditors": set(), "admins": set(),
            "project-lung": {"alice", "carol"}, "project-brain": {"bob", "carol"},
        }
        paths = [p for m, p in kc.requests]
        assert any("/children" in p for p in paths) and any("/members" in p for p in paths)
        # a disabled user is nobody's member
        kc.realm.disable("carol")
        got = _directory(kc).membership()
        assert "carol" not in got["researchers"] and "carol" not in got["project-lung"]
        assert kc.violations == []


def test_wrong_client_secret_reads_nothing():
    with KeycloakAdminMock() as kc:
        with pytest.raises(Exception):
            _directory(kc, secret="wrong").membership()


def test_plan_removals():
    kc = {"researchers": {"alice", "carol"}, "project-lung": {"alice"}, "dac": set()}
    users = [
        {"name": "alice", "groups": ["researchers", "project-lung"]},
        {"name": "carol", "groups": ["researchers", "project-lung", "unrelated"]},
        {"name": "zed", "groups": ["dac"]},
        {"name": "svc", "groups": []},
    ]
    assert plan_removals(kc, users) == {"carol": {"project-lung"}, "zed": {"dac"}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    users = {"alice": ["researchers", "project-lung"], "bob": ["researchers", "project-brain"],
             "carol": ["researchers", "project-lung", "project-brain"], "dora": ["data-managers"]}
    h = start_hub(tmp_path_factory.mktemp("kchub"), users=users, extra_config=SPAWNER_CONFIG)
    yield h
    h.stop()


def _groups(hub, user):
    return sorted(hub.api("GET", f"/users/{user}").json()["groups"])


def test_membership_removed_in_keycloak_stops_workspaces(hub):
    _start(hub, "carol", "", {"project": "lung"})
    _start(hub, "carol", "brain", {"project": "brain"})
    _start(hub, "alice", "", {"project": "lung"})
    _start(hub, "bob", "", {"project": "brain"})
    token = hub.service_tokens["insitu-hub"]
    with KeycloakAdminMock() as kc:
        sync = KeycloakSync(HubAPI(hub.api_url, token), _directory(kc))
        # in step: nothing happens
        report = asyncio.run(sync.run_once())
        assert report.error is None and report.removed == [] and report.stopped == []

        kc.realm.remove_member("project-lung", "carol")   # carol leaves the lung project
        kc.realm.disable("alice")                          # alice's account is disabled
        t0 = time.monotonic()
        report = asyncio.run(sync.run_once())
        elapsed = time.monotonic() - t0
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
        assert elapsed < 30
        assert kc.violations == []

        # a realm that looks empty (wrong realm or client) changes nothing
        for g in kc.realm.all_groups():
            g.members.clear()
        kc.realm.groups = [g for g in kc.realm.groups if g.name in ("staff",)]
        report = asyncio.run(sync.run_once())
        assert "none of the role groups" in report.error and report.removed == []
        assert _running(hub, "bob") == {""}

    # Keycloak unreachable: nothing changes either
    report = asyncio.run(sync.run_once())
    assert report.error and report.removed == [] and _running(hub, "bob") == {""}


def test_sync_refuses_a_token_without_the_needed_scopes(hub):
    with KeycloakAdminMock() as kc:
        kc.realm.remove_member("project-brain", "bob")
        weak = KeycloakSync(HubAPI(hub.api_url, hub.token_for("dora")), _directory(kc))
        report = asyncio.run(weak.run_once())
        assert "lacks the scopes" in report.error and report.removed == []
        assert "project-brain" in _groups(hub, "bob")
