"""InsituKubeSpawner: golden pod manifests per profile and grant scenario,
each validated against the Kubernetes OpenAPI schema (strict) and the Kyverno
rules (hub/preflight.py); forged options refused before any manifest.

KubeSpawner builds the manifests for real (``get_pod_manifest``) with a dummy
kubeconfig and a mock hub: no API server exists here (RUNS-HERE.md).
Regenerate the golden files after an intended change with
``INSITU_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/kube/test_kube_spawner.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import respx

from hub import preflight
from hub.kube import InsituKubeSpawner, pod_manifest_dict, render_plan, KubeOptions
from hub.plan import GrantedDataset, PlanError, PlanSettings, build_plan, derive_uid
from hub.spawner_base import WorkspaceRefused

REPO = Path(__file__).resolve().parents[2]

GOLDEN = Path(__file__).parent / "golden"
K8S_VERSION = "1.33.0"
SETTINGS = PlanSettings(datasets_dir="/srv/insitu/datasets")
GRANTED = [
    GrantedDataset("ds-lung-ct-v1", 3001, manifest_root="0x" + "aa" * 32, project="lung1", name="Lung CT", version="1"),
    GrantedDataset("ds-lung-pet-v2", 3002, manifest_root="0x" + "bb" * 32, project="lung1", name="Lung PET/CT",
                   version="2"),
    GrantedDataset("ds-breast-mr-v1", 3003, manifest_root="0x" + "cc" * 32, project="breast2"),
]

SCENARIOS = {
    # name: (profile, chosen datasets, spawner config)
    "notebook-cpu-two-datasets": ("notebook-cpu", ["ds-lung-ct-v1", "ds-lung-pet-v2"], {}),
    "notebook-cpu-one-dataset": ("notebook-cpu", ["ds-lung-pet-v2"], {}),
    "notebook-gpu-exclusive": ("notebook-gpu", ["ds-lung-ct-v1"], {}),
    "notebook-gpu-mig": ("notebook-gpu", ["ds-lung-ct-v1"], {"gpu_sharing": "mig", "gpu_mig_profile": "2g.20gb"}),
    "notebook-gpu-time-sliced": ("notebook-gpu", ["ds-lung-ct-v1"], {"gpu_sharing": "time-slicing"}),
    "desktop-two-datasets": ("desktop", ["ds-lung-ct-v1", "ds-lung-pet-v2"], {}),
}


@pytest.fixture(autouse=True)
def dummy_kubeconfig(tmp_path, monkeypatch):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: dummy, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: dummy, user: {token: dummy}}]\n"
        "contexts: [{name: dummy, context: {cluster: dummy, user: dummy}}]\n"
        "current-context: dummy\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    import kubernetes_asyncio.config.kube_config as kc

    monkeypatch.setattr(kc, "KUBE_CONFIG_DEFAULT_LOCATION", str(cfg))


class MockUser:
    def __init__(self, name):
        self.name = name
        self.id = 7
        self.url = f"/user/{name}/"
        self.groups = []


def make_spawner(user="alice", **config):
    sp = InsituKubeSpawner(_mock=True, user=MockUser(user), namespace="insitu-workspaces", **config)
    return sp


async def manifest_for(profile, chosen, config, user="alice", session_id="s-0001"):
    plan = build_plan(user, "lung1", GRANTED, chosen, profile, SETTINGS, session_id=session_id)
    sp = make_spawner(user, **config)
    sp.apply_plan(plan, vnc_password="vnc-fixed-for-golden" if plan.kind == "desktop" else None)
    return plan, pod_manifest_dict(await sp.get_pod_manifest())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_golden_manifest(name):
    profile, chosen, config = SCENARIOS[name]
    plan, manifest = await manifest_for(profile, chosen, config)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("INSITU_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    assert manifest == json.loads(path.read_text())
    # valid Kubernetes, unknown fields rejected
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    # admissible under every Kyverno rule, in a workspace namespace, with its session
    ns = {"insitu.io/workspaces": "true"}
    for policy, rule in preflight.RULES:
        result, msgs = preflight.evaluate(
            manifest, policy, rule, session=_session(plan), namespace_labels=ns
        )
        assert result == "pass", (policy, rule, msgs)


def _session(plan):
    return {
        "session_id": plan.session_id,
        "open": True,
        "user": plan.user,
        "project": plan.project,
        "datasets": [{"dataset_id": d, "gid": g} for d, g in zip(plan.dataset_ids, plan.supplementary_gids)],
    }


async def test_environment_values_reach_the_pod_literally():
    """$INSITU_GRANTS is JSON: KubeSpawner's template expansion of environment values must leave it
    (and a dataset name with braces in it) exactly as the plan says."""
    granted = [GrantedDataset("ds-lung-ct-v1", 3001, manifest_root="aa" * 32, project="lung1", grant_id="7",
                              name="Lung {CT} {username}", version="1", expires_at="2027-03-31T00:00:00+00:00")]
    plan = build_plan("alice", "lung1", granted, ["ds-lung-ct-v1"], "notebook-cpu", SETTINGS, session_id="s-1")
    sp = make_spawner()
    sp.apply_plan(plan)
    manifest = pod_manifest_dict(await sp.get_pod_manifest())
    env = {e["name"]: e.get("value") for c in manifest["spec"]["containers"] for e in c.get("env", [])}
    assert env["INSITU_GRANTS"] == plan.environment["INSITU_GRANTS"]
    assert json.loads(env["INSITU_GRANTS"])["ds-lung-ct-v1"]["name"] == "Lung {CT} {username}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_manifest_invariants(name):
    """Stated independently of the golden files."""
    profile, chosen, config = SCENARIOS[name]
    plan, m = await manifest_for(profile, chosen, config)
    spec = m["spec"]
    psc = spec["securityContext"]
    gids = [g.gid for g in GRANTED if g.dataset_id in chosen]
    assert psc["runAsUser"] == derive_uid("alice", SETTINGS) >= 1000
    assert psc["runAsGroup"] == 100 and psc["runAsNonRoot"] is True
    assert sorted(psc["supplementalGroups"]) == sorted(gids)
    assert "fsGroup" not in psc and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    c, gw = spec["containers"]
    assert not spec.get("initContainers")
    # the gateway sidecar (hub/kube_gateway.py): another uid, no volume, the only declared port
    assert c["name"] == "notebook" and gw["name"] == "gateway"
    assert gw["securityContext"]["runAsUser"] not in (psc["runAsUser"], None)
    assert gw["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert gw["securityContext"]["readOnlyRootFilesystem"] is True
    assert not gw.get("volumeMounts") and not c.get("ports") and not spec.get("shareProcessNamespace")
    assert [p["containerPort"] for p in gw["ports"]] == [8080]
    assert "--ServerApp.ip=127.0.0.1" in c["args"]
    gw_env = {e["name"]: e for e in gw["env"]}
    nb_env = {e["name"]: e for e in c["env"]}
    for k in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_OAUTH_CALLBACK_URL"):
        assert gw_env[k] == nb_env[k]
    assert gw_env["INSITU_SESSION_ID"]["value"] == "s-0001"
    assert gw_env["INSITU_GATEWAY_UPSTREAM"]["value"] == "http://127.0.0.1:8888"
    csc = c["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"] == {"drop": ["ALL"]}
    assert csc.get("privileged") is not True
    vols = {v["name"]: v for v in spec["volumes"]}
    assert set(vols) == {"lake", "datasets", "home", "tmp"}
    assert vols["lake"]["persistentVolumeClaim"] == {"claimName": "insitu-lake", "readOnly": True}
    assert vols["datasets"]["persistentVolumeClaim"] == {"claimName": "insitu-datasets", "readOnly": True}
    writable = [mt for mt in c["volumeMounts"] if not mt.get("readOnly")]
    assert sorted(mt["mountPath"] for mt in writable) == ["/home/jovyan", "/tmp"]
    ds_mounts = [(mt["mountPath"], mt["subPath"]) for mt in c["volumeMounts"] if mt["name"] == "datasets"]
    # each chosen dataset at its id, then once more at its readable path (the same folder of the claim)
    assert [d for p, d in ds_mounts if p == f"/mnt/datasets/{d}"] == chosen
    by_name = {d: p for p, d in ds_mounts if p.startswith("/mnt/datasets/by-name/")}
    assert by_name == dict(plan.dataset_paths) and len(ds_mounts) == 2 * len(chosen)
    assert by_name.get("ds-lung-pet-v2", "/mnt/datasets/by-name/lung-pet-ct-v2") == "/mnt/datasets/by-name/lung-pet-ct-v2"
    assert all(mt.get("readOnly") for mt in c["volumeMounts"] if mt["name"] in ("lake", "datasets"))
    ann = m["metadata"]["annotations"]
    assert ann["insitu.io/user"] == "alice" and ann["insitu.io/project"] == "lung1"
    assert ann["insitu.io/session"] == "s-0001"
    assert ann["insitu.io/dataset-ids"] == ",".join(chosen)
    assert m["metadata"]["labels"]["insitu.io/session"] == "s-0001"
    limits = c["resources"]["limits"]
    if profile == "notebook-gpu":
        res = {"exclusive": "nvidia.com/gpu", "mig": "nvidia.com/mig-2g.20gb", "time-slicing": "nvidia.com/gpu.shared"}[
            config.get("gpu_sharing", "exclusive")
        ]
        assert limits[res] == "1"
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    else:
        assert not any(k.startswith("nvidia.com/") for k in limits)
        assert not spec.get("nodeSelector")
    if profile == "desktop":
        assert c["image"].startswith("registry.insitu.local/insitu/desktop:")
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["INSITU_VNC_PORT"] == "5901" and env["INSITU_VNC_PASSWORD"] == "vnc-fixed-for-golden"
    else:
        assert c["image"].startswith("registry.insitu.local/insitu/notebook:")


async def test_the_options_form_is_the_platforms_on_kubernetes_too():
    """KubeSpawner's own default form (its profile_list, empty here) would offer no dataset at all."""
    sp = make_spawner()
    assert sp.options_form == sp.insitu_options_form


async def test_dataset_of_another_project_is_never_rendered():
    with pytest.raises(PlanError) as e:
        build_plan("alice", "lung1", GRANTED, ["ds-breast-mr-v1"], "notebook-cpu", SETTINGS, session_id="s-1")
    assert "not granted" in str(e.value)


async def test_preflight_blocks_a_misconfigured_image():
    plan = build_plan("alice", "lung1", GRANTED, ["ds-lung-ct-v1"], "notebook-cpu", SETTINGS, session_id="s-1")
    sp = make_spawner(notebook_image="docker.io/jupyter/scipy-notebook:latest")
    sp.apply_plan(plan)
    with pytest.raises(WorkspaceRefused, match="allowed-images"):
        await sp.get_pod_manifest()


async def test_preflight_blocks_extra_config_that_escalates():
    """Site config that would weaken the pod (a hostPath, a privileged sidecar,
    an extra group) is refused by the pre-flight check, not sent to the cluster."""
    plan = build_plan("alice", "lung1", GRANTED, ["ds-lung-ct-v1"], "notebook-cpu", SETTINGS, session_id="s-1")
    for tamper, rule in [
        (lambda sp: setattr(sp, "volumes", sp.volumes + [{"name": "h", "hostPath": {"path": "/"}}]), "allowed-volume-types"),
        (lambda sp: setattr(sp, "supplemental_gids", sp.supplemental_gids + [3003]), "supplemental-groups-listed"),
        (lambda sp: setattr(sp, "extra_containers", [{"name": "side", "image": "registry.insitu.local/insitu/notebook:0.1.0", "securityContext": {"privileged": True}}]), "container-security-context"),
        (lambda sp: setattr(sp, "service_account", "default") or setattr(sp, "automount_service_account_token", True), "pod-security-context"),
    ]:
        sp = make_spawner()
        sp.apply_plan(plan)
        tamper(sp)
        with pytest.raises(WorkspaceRefused, match=rule):
            await sp.get_pod_manifest()


async def test_no_manifest_without_a_plan():
    with pytest.raises(WorkspaceRefused):
        await make_spawner().get_pod_manifest()


def test_render_refuses_a_plan_with_a_writable_data_mount():
    import dataclasses

    plan = build_plan("alice", "lung1", GRANTED, ["ds-lung-ct-v1"], "notebook-cpu", SETTINGS, session_id="s-1")
    bad = dataclasses.replace(plan, mounts=tuple(dataclasses.replace(m, read_only=False) if m.kind == "lake" else m for m in plan.mounts))
    with pytest.raises(WorkspaceRefused, match="lake must be mounted read-only"):
        render_plan(bad, KubeOptions())
    writable_dataset = dataclasses.replace(plan, mounts=tuple(
        dataclasses.replace(m, read_only=False) if m.kind == "dataset" else m for m in plan.mounts))
    with pytest.raises(WorkspaceRefused, match="must be read-only"):
        render_plan(writable_dataset, KubeOptions())


def test_render_refuses_a_writable_data_mount_under_python_O():
    """The check holds where asserts are stripped."""
    code = ("import dataclasses, sys; sys.path.insert(0, 'tests/kube'); "
            "from test_kube_spawner import build_plan, GRANTED, SETTINGS, render_plan, KubeOptions, WorkspaceRefused\n"
            "plan = build_plan('alice', 'lung1', GRANTED, ['ds-lung-ct-v1'], 'notebook-cpu', SETTINGS, session_id='s-1')\n"
            "bad = dataclasses.replace(plan, mounts=tuple(dataclasses.replace(m, read_only=False) if m.kind == 'lake' "
            "else m for m in plan.mounts))\n"
            "try:\n    render_plan(bad, KubeOptions())\nexcept WorkspaceRefused:\n    sys.exit(0)\nsys.exit(3)\n")
    r = subprocess.run([sys.executable, "-O", "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


# --- forged options: refused before any manifest is built ------------------------

DS_URL = "http://dataset-service.test/services/dataset-service"


class NoManifestSpawner(InsituKubeSpawner):
    manifests_built = 0

    async def get_pod_manifest(self):
        type(self).manifests_built += 1
        raise AssertionError("no manifest may be built")


@pytest.mark.parametrize(
    "options,why",
    [
        ({"profile": "notebook-root", "project": "lung1", "dataset_ids": ["ds-lung-ct-v1"]}, "not offered"),
        ({"profile": "notebook-cpu", "project": "lung1", "dataset_ids": ["ds-breast-mr-v1"]}, "refused"),
        ({"profile": "notebook-cpu", "project": "lung1", "dataset_ids": "ds-lung-ct-v1"}, "list"),
        ({"profile": "notebook-cpu", "project": "lung1", "dataset_ids": ["ds-lung-ct-v1", "ds-lung-ct-v1"]}, "twice"),
    ],
)
async def test_forged_options_refused_before_any_manifest(options, why):
    # respx stands in for the dataset service's POST /api/sessions (docs/CONTRACTS.md §3):
    # it refuses any dataset not granted to (alice, lung1), as the real service does.
    NoManifestSpawner.manifests_built = 0
    with respx.mock(assert_all_called=False) as router:

        def sessions(request):
            body = json.loads(request.content)
            granted = {"ds-lung-ct-v1": 3001, "ds-lung-pet-v2": 3002}
            bad = [d for d in body["dataset_ids"] if d not in granted]
            if bad:
                return httpx.Response(403, json={"detail": {"reason": "not granted", "refused": [{"dataset_id": d, "reason": "no grant"} for d in bad]}})
            raise AssertionError("a forged request reached a granting path")

        route = router.post(f"{DS_URL}/api/sessions").mock(side_effect=sessions)
        sp = NoManifestSpawner(_mock=True, user=MockUser("alice"), namespace="insitu-workspaces",
                               dataset_service_url=DS_URL, dataset_service_token="t")
        sp.user_options = options
        with pytest.raises(WorkspaceRefused, match=why):
            await sp.start()
    assert NoManifestSpawner.manifests_built == 0
    if why in ("not offered", "list", "twice"):
        assert not route.called  # refused before even asking the service


async def test_session_answer_for_other_datasets_is_refused_and_closed():
    """A (buggy or hostile) answer granting more than asked is refused, and
    the session it opened is closed again; no manifest is built."""
    NoManifestSpawner.manifests_built = 0
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{DS_URL}/api/sessions").mock(return_value=httpx.Response(201, json={
            "session_id": "s-9", "user": "alice", "project": "lung1", "lake_dir": "/srv/lake",
            "lake_mount_path": "/mnt/datalake",
            "datasets": [{"dataset_id": "ds-lung-ct-v1", "gid": 3001, "path": "/d/1", "manifest_root": "0x1"},
                         {"dataset_id": "ds-breast-mr-v1", "gid": 3003, "path": "/d/3", "manifest_root": "0x3"}]}))
        closed = router.delete(f"{DS_URL}/api/sessions/s-9").mock(return_value=httpx.Response(204))
        sp = NoManifestSpawner(_mock=True, user=MockUser("alice"), namespace="insitu-workspaces",
                               dataset_service_url=DS_URL, dataset_service_token="t")
        sp.user_options = {"profile": "notebook-cpu", "project": "lung1", "dataset_ids": ["ds-lung-ct-v1"]}
        with pytest.raises(WorkspaceRefused):
            await sp.start()
        assert closed.called
    assert NoManifestSpawner.manifests_built == 0
