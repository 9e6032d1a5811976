"""The platform on a real Kubernetes API server, with Kyverno's admission controller.

Everything here is the real program (tests/kube/cluster.py): kube-apiserver v1.36.3 on
kine, the chart installed by `helm install`, the hub's ServiceAccount token from the
TokenRequest API and the chart's RBAC, the hub's InsituKubeSpawner with a session opened
at the real dataset service (the governance stack: JupyterHub, tracer, dataset service),
and Kyverno v1.19.1's admission controller serving its webhook to the API server over
loopback TLS, its session check calling that dataset service with the insitu-admission
token. Only kube-controller-manager, the scheduler and a kubelet do not run: pods are
admitted and stored, not started (the default ServiceAccount of a namespace and the
hub's ServiceAccount, which kube-controller-manager and z2jh would create, are created
here).

* The chart installs, and its RBAC gives the hub exactly what it needs in the workspace
  namespace.
* The spawner's pod, created with the hub's token, is what the golden manifest says
  (the scenario of golden/notebook-cpu-two-datasets.json, only the session id is the
  service's), and the API server keeps it as sent: every field the spawner set is stored
  unchanged; what the server adds is a known default.
* Kyverno refuses every way around the rules (bare pod, extra group id, forged dataset,
  writable lake, hostPath, privileged, another image, service-account token, closed
  session), each naming the rule that catches it, while it admits the spawner's pod; it
  gives every kyverno/tests fixture the verdict the suite expects of it; it generates
  the default-deny egress policy in every workspace namespace and puts it back when it
  is deleted.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fixtures.governance_stack import GovernanceStack, start_governance_stack

from .cluster import KYVERNO, KYVERNO_NS, Cluster, Kyverno, apply_policies, missing, start_kyverno, wait_until
from .kubetools import CHART, ROOT, run, stubbed_chart, tool

NS = "insitu"  # the release namespace
WS = "insitu-workspaces"  # the chart's workspace namespace (Pod Security "restricted" enforced)
LAB = "insitu-lab"  # another workspace namespace, labelled only for Kyverno (no Pod Security label)
GOLDEN = Path(__file__).parent / "golden"
# the datasets of golden/notebook-cpu-two-datasets.json, with its gids, held by the real
# dataset service and granted to alice's project lung1; their manifest roots are the
# service's (hex), the golden file's are the unit tests' ("0x" + hex); their names and versions
# are the unit tests' (the readable paths /mnt/datasets/by-name/... of the golden file)
DATASETS = {"ds-lung-ct-v1": (3001, "aa" * 32), "ds-lung-pet-v2": (3002, "bb" * 32)}
NAMES = {"ds-lung-ct-v1": ("Lung CT", 1), "ds-lung-pet-v2": ("Lung PET/CT", 2)}
SUITES = sorted(p.parent for p in (ROOT / "kyverno" / "tests").glob("*/kyverno-test.yaml"))


@dataclass
class Platform:
    cluster: Cluster
    stack: GovernanceStack
    kyverno: Kyverno
    hub_kubeconfig: Path
    work: Path


def _grant(st: GovernanceStack, ds: str, user: str, project: str) -> None:
    body = {"dataset_id": ds, "project": project, "purpose": "train a lung nodule detector",
            "intended_use": "model training inside the workspace", "duration_days": 30}
    with st.api(user) as c:
        r = c.post("/api/access-requests", json=body)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
    for dac in ("dac1", "dac2"):
        with st.api(dac) as c:
            r = c.post(f"/api/access-requests/{rid}/votes", json={"decision": "approve", "reason": ""})
            assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved", r.text


def _helm_install(cluster: Cluster, work: Path) -> None:
    chart = stubbed_chart(work / "chart")
    r = run([tool("helm"), "install", "insitu", str(chart), "-n", NS, "--create-namespace",
             "-f", str(CHART / "examples" / "minimal.yaml"), "--no-hooks", "--timeout", "3m",
             "--kubeconfig", str(cluster.admin_kubeconfig)], home=work / "helm")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.fixture(scope="module")
def platform(kube_cluster, tmp_path_factory):
    absent = missing(KYVERNO)
    if absent:
        pytest.skip(f"not built: {', '.join(absent)} (run scripts/setup.d/31-kube-cluster.sh)")
    work = tmp_path_factory.mktemp("kube-platform")
    stack = start_governance_stack(work / "governance")
    kyverno = None
    try:
        stack.hub.set_groups("alice", ["researchers", "project-lung", "project-lung1"])
        for ds, (gid, root) in DATASETS.items():
            stack.add_dataset(NAMES[ds][0], id=ds, version=NAMES[ds][1])
            stack.sql("update datasets set gid = :g, merkle_root = :r where id = :i", g=gid, r=root, i=ds)
            _grant(stack, ds, "alice", "lung1")
        c = kube_cluster
        kyverno = start_kyverno(c, work / "kyverno", http_allow=[f"{stack.base}/api/sessions/"])
        # the admission ConfigMap of kyverno/README.md, with the insitu-admission service's token
        c.kubectl("create", "configmap", "insitu-admission", "-n", KYVERNO_NS,
                  f"--from-literal=datasetServiceUrl={stack.base}",
                  f"--from-literal=token={stack.token('insitu-admission')}")
        apply_policies(c, sorted((ROOT / "kyverno" / "policies").glob("*.yaml")))
        _helm_install(c, work)
        c.ensure_default_sa(WS)
        c.kubectl("create", "serviceaccount", "hub", "-n", NS)  # z2jh's (stubbed here)
        c.apply([{"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": LAB, "labels": {"insitu.io/workspaces": "true"}}}])
        c.ensure_default_sa(LAB)
        hub = c.token_kubeconfig("hub", c.token(NS, "hub"))
        yield Platform(cluster=c, stack=stack, kyverno=kyverno, hub_kubeconfig=hub, work=work)
    finally:
        if kyverno is not None:
            kyverno.stop()
        stack.stop()


# --- the chart and its RBAC -------------------------------------------------------------
def test_helm_installed_the_chart_into_the_api_server(platform):
    c = platform.cluster
    r = run([tool("helm"), "status", "insitu", "-n", NS, "-o", "json", "--kubeconfig", str(c.admin_kubeconfig)],
            home=platform.work / "helm")
    assert r.returncode == 0 and json.loads(r.stdout)["info"]["status"] == "deployed", r.stderr
    r = run([tool("helm"), "get", "manifest", "insitu", "-n", NS, "--kubeconfig", str(c.admin_kubeconfig)],
            home=platform.work / "helm")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert len(docs) > 20
    for d in docs:  # every resource of the release is stored
        ns = ["-n", d["metadata"].get("namespace") or NS] if d["kind"] not in ("Namespace",) else []
        got = c.get(d["kind"], d["metadata"]["name"], *ns)
        assert got["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    labels = c.get("namespace", WS)["metadata"]["labels"]
    assert labels["insitu.io/workspaces"] == "true" and labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("verb, resource, namespace, allowed", [
    ("create", "pods", WS, True), ("delete", "pods", WS, True), ("watch", "pods", WS, True),
    ("list", "events", WS, True), ("create", "secrets", WS, True),
    ("create", "pods/exec", WS, False), ("patch", "pods", WS, False), ("create", "events", WS, False),
    ("create", "pods", "default", False), ("create", "pods", LAB, False), ("list", "secrets", KYVERNO_NS, False),
    ("update", "networkpolicies", WS, False), ("delete", "networkpolicies", WS, False),
    ("list", "nodes", "", False), ("create", "clusterpolicies.kyverno.io", "", False),
])
def test_the_hub_token_has_the_charts_rbac(platform, verb, resource, namespace, allowed):
    ns = ["-n", namespace] if namespace else []
    resource, _, sub = resource.partition("/")
    sub = [f"--subresource={sub}"] if sub else []
    r = platform.cluster.kubectl("auth", "can-i", verb, resource, *sub, *ns, kubeconfig=platform.hub_kubeconfig,
                                 check=False)
    assert r.stdout.strip() == ("yes" if allowed else "no"), (r.stdout, r.stderr)


# --- the spawner's pod ------------------------------------------------------------------
class _User:
    def __init__(self, name):
        self.name, self.id, self.url, self.groups = name, 7, f"/user/{name}/", []


def _spawner(platform, monkeypatch, datasets, user="alice", project="lung1"):
    import kubernetes_asyncio.config.kube_config as kc

    from hub.kube import InsituKubeSpawner

    # the hub's credentials: its ServiceAccount token (TokenRequest), nothing else
    monkeypatch.setenv("KUBECONFIG", str(platform.hub_kubeconfig))
    monkeypatch.setattr(kc, "KUBE_CONFIG_DEFAULT_LOCATION", str(platform.hub_kubeconfig))
    sp = InsituKubeSpawner(_mock=True, user=_User(user), namespace=WS, k8s_api_host=platform.cluster.url,
                           k8s_api_ssl_ca_cert=str(platform.cluster.pki["ca"]),
                           dataset_service_url=platform.stack.base,
                           dataset_service_token=platform.stack.token("insitu-hub"))
    sp.user_options = {"profile": "notebook-cpu", "project": project, "dataset_ids": list(datasets)}
    return sp


async def _spawn_pod(platform, monkeypatch, datasets=tuple(DATASETS), create=True):
    """What InsituKubeSpawner.start does up to the pod's creation (no kubelet will run it):
    the session at the dataset service, the plan, the manifest (pre-flight checked), and
    KubeSpawner's own create request, with the hub's token."""
    from hub.kube import pod_manifest_dict

    sp = _spawner(platform, monkeypatch, datasets)
    plan = await sp.open_dataset_session()
    sp.apply_plan(plan)
    pod = await sp.get_pod_manifest()
    if create:
        assert await sp._make_create_pod_request(pod, 60) is True
    return sp, plan, pod_manifest_dict(pod)


def _diff(sent, stored, path=""):
    """(changed, dropped, added) between what was sent and what the API server stored."""
    changed, dropped, added = [], {}, {}
    if isinstance(sent, dict) and isinstance(stored, dict):
        for k, v in sent.items():
            if k not in stored:
                dropped[f"{path}.{k}"] = v
            else:
                c, d, a = _diff(v, stored[k], f"{path}.{k}")
                changed += c
                dropped.update(d)
                added.update(a)
        added.update({f"{path}.{k}": v for k, v in stored.items() if k not in sent})
    elif isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        for i, (a_, b_) in enumerate(zip(sent, stored)):
            c, d, a = _diff(a_, b_, f"{path}[{i}]")
            changed += c
            dropped.update(d)
            added.update(a)
    elif sent != stored and not _same_quantity(path, sent, stored):
        changed.append((path, sent, stored))
    return changed, dropped, added


def _same_quantity(path, a, b) -> bool:
    """Resource quantities are canonicalised by the server ("2.0" -> "2", "0.5" -> "500m")."""
    if ".resources." not in path:
        return False
    from kubernetes.utils import parse_quantity

    return parse_quantity(str(a)) == parse_quantity(str(b))


# What the API server (defaulting, the ServiceAccount and DefaultTolerationSeconds admission
# plugins) adds to a pod the spawner sent: path (list indexes as *) -> the value it must have.
DEFAULTED = {
    ".metadata.creationTimestamp": None, ".metadata.managedFields": None, ".metadata.resourceVersion": None,
    ".metadata.uid": None, ".metadata.namespace": WS, ".metadata.generation": 1, ".status": None,
    ".spec.dnsPolicy": "ClusterFirst", ".spec.enableServiceLinks": True, ".spec.preemptionPolicy":
    "PreemptLowerPriority", ".spec.priority": 0, ".spec.restartPolicy": "Always", ".spec.schedulerName":
    "default-scheduler", ".spec.serviceAccount": "default", ".spec.serviceAccountName": "default",
    ".spec.terminationGracePeriodSeconds": 30,
    ".spec.tolerations": [
        {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists",
         "tolerationSeconds": 300},
        {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists",
         "tolerationSeconds": 300}],
    ".spec.containers[*].terminationMessagePath": "/dev/termination-log",
    ".spec.containers[*].terminationMessagePolicy": "File",
    ".spec.containers[*].imagePullPolicy": "IfNotPresent",
    ".spec.containers[*].ports[*].protocol": "TCP",
    ".spec.volumes[*].persistentVolumeClaim.readOnly": None,
}


def _pattern(path: str) -> str:
    import re

    return re.sub(r"\[\d+\]", "[*]", path)


async def test_spawner_pod_is_stored_as_the_golden_manifest_says(platform, monkeypatch):
    c = platform.cluster
    sp, plan, sent = await _spawn_pod(platform, monkeypatch)
    try:
        # the plan from the real session renders the golden manifest (but for the session id
        # and the roots' 0x prefix)
        golden = (GOLDEN / "notebook-cpu-two-datasets.json").read_text().replace("s-0001", plan.session_id)
        for _, root in DATASETS.values():
            golden = golden.replace("0x" + root, root)
        # ... and for $INSITU_GRANTS: the real service's grant ids and end dates (the golden file has
        # only the names and versions)
        compared, expected, grants = copy.deepcopy(sent), json.loads(golden), {}
        for pod, out in ((compared, grants), (expected, {})):
            for ctr in pod["spec"]["containers"]:
                for e in [e for e in ctr.get("env", []) if e.get("name") == "INSITU_GRANTS"]:
                    out.update(json.loads(e["value"]))
                    ctr["env"].remove(e)
        assert sorted(grants) == sorted(DATASETS) and all(g["grant_id"] and g["expires_at"] for g in grants.values())
        assert {d: (g["name"], int(g["version"])) for d, g in grants.items()} == NAMES
        assert compared == expected

        stored = c.get("pod", sent["metadata"]["name"], "-n", WS)
        changed, dropped, added = _diff(sent, stored)
        assert changed == [], changed  # nothing the spawner set was altered
        assert all(v in ("", [], {}, False) for v in dropped.values()), dropped  # only empty values omitted
        unexpected = {p: v for p, v in added.items()
                      if _pattern(p) not in DEFAULTED
                      or (DEFAULTED[_pattern(p)] is not None and DEFAULTED[_pattern(p)] != v)}
        assert unexpected == {}, unexpected
        # the kernel-facing parts, read from the store
        ctx = stored["spec"]["securityContext"]
        assert ctx["supplementalGroups"] == [3001, 3002] and ctx["runAsGroup"] == 100 and "fsGroup" not in ctx
        assert stored["spec"]["automountServiceAccountToken"] is False
        assert not any(v.get("projected") for v in stored["spec"]["volumes"])  # no token volume injected
    finally:
        await sp.close_dataset_session()
        c.kubectl("delete", "pod", sent["metadata"]["name"], "-n", WS, "--wait=false")


# --- Kyverno's admission ---------------------------------------------------------------
def _create(c: Cluster, doc: dict, namespace: str, kubeconfig: Path | None = None):
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = namespace
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        doc["metadata"].pop(k, None)
    return c.kubectl("create", "-f", "-", input=json.dumps(doc), kubeconfig=kubeconfig, check=False)


def _with(pod, name, change):
    pod = copy.deepcopy(pod)
    pod["metadata"]["name"] = name
    change(pod)
    return pod


def _main(pod):
    return next(x for x in pod["spec"]["containers"] if x["name"] != "gateway")


def _bare(pod):
    pod["metadata"] = {"name": pod["metadata"]["name"]}
    pod["spec"] = {"containers": [{"name": "notebook", "image": "registry.insitu.local/insitu/notebook:0.1.0"}]}


def _extra_gid(pod):
    pod["spec"]["securityContext"]["supplementalGroups"].append(3003)


def _forged_dataset(pod):
    _extra_gid(pod)
    a = pod["metadata"]["annotations"]
    a["insitu.io/dataset-gids"] += ",3003"
    a["insitu.io/dataset-ids"] += ",ds-breast-mr-v1"


def _writable_lake(pod):
    for v in pod["spec"]["volumes"]:
        if v["name"] == "lake":
            v["persistentVolumeClaim"]["readOnly"] = False
    for m in _main(pod)["volumeMounts"]:
        if m["name"] == "lake":
            m["readOnly"] = False


def _host_path(pod):
    pod["spec"]["volumes"].append({"name": "rawlake", "hostPath": {"path": "/srv/insitu/lake"}})
    _main(pod)["volumeMounts"].append({"name": "rawlake", "mountPath": "/mnt/raw", "readOnly": True})


def _privileged(pod):
    _main(pod)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)


def _other_image(pod):
    _main(pod)["image"] = "docker.io/library/python:3.12"


def _sa_token(pod):
    pod["spec"]["automountServiceAccountToken"] = True


BYPASSES = {  # name: (change to the spawner's pod, the rules that must name it)
    "bare-pod": (_bare, [("insitu-workspace-security", "pod-security-context"),
                         ("insitu-workspace-datasets", "session-covers-datasets"),
                         ("insitu-workspace-gateway", "gateway-sidecar")]),
    "extra-supplemental-group": (_extra_gid, [("insitu-workspace-datasets", "supplemental-groups-listed")]),
    "forged-dataset": (_forged_dataset, [("insitu-workspace-datasets", "session-covers-datasets")]),
    "writable-lake": (_writable_lake, [("insitu-workspace-volumes", "data-volumes-read-only"),
                                       ("insitu-workspace-volumes", "data-mounts-read-only")]),
    "host-path": (_host_path, [("insitu-workspace-volumes", "allowed-volume-types")]),
    "privileged": (_privileged, [("insitu-workspace-security", "container-security-context")]),
    "another-image": (_other_image, [("insitu-workspace-images", "allowed-images")]),
    "service-account-token": (_sa_token, [("insitu-workspace-security", "pod-security-context")]),
}


def _refused_by(r, rules) -> None:
    assert r.returncode != 0, f"admitted: {r.stdout}"
    msg = r.stderr
    assert 'admission webhook "validate.kyverno.svc-fail" denied the request' in msg, msg
    for policy, rule in rules:
        assert f"{policy}:" in msg and f"{rule}:" in msg, (policy, rule, msg)


@pytest.fixture(scope="module")
def spawned(platform):
    """The spawner's pod, with its session open at the dataset service."""
    mp = pytest.MonkeyPatch()
    try:
        sp, plan, sent = asyncio.run(_spawn_pod(platform, mp))
    finally:
        mp.undo()
    yield sent
    asyncio.run(sp.close_dataset_session())
    platform.cluster.kubectl("delete", "pod", sent["metadata"]["name"], "-n", WS, "--wait=false")


def test_kyverno_admits_the_spawners_pod(platform, spawned):
    c = platform.cluster
    assert c.get("pod", spawned["metadata"]["name"], "-n", WS)["metadata"]["uid"]
    # the same pod again, by another name, in a namespace that only Kyverno guards
    r = _create(c, _with(spawned, "control-spawner-pod", lambda p: None), LAB)
    assert r.returncode == 0, r.stderr
    c.kubectl("delete", "pod", "control-spawner-pod", "-n", LAB, "--wait=false")


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_kyverno_refuses_every_bypass_of_the_spawners_pod(platform, spawned, name):
    change, rules = BYPASSES[name]
    c = platform.cluster
    pod = _with(spawned, f"bypass-{name}", change)
    _refused_by(_create(c, pod, LAB), rules)  # as cluster admin, where Pod Security does not apply
    r = _create(c, pod, WS, kubeconfig=platform.hub_kubeconfig)  # with the hub's own token
    assert r.returncode != 0 and ("denied the request" in r.stderr or "violates PodSecurity" in r.stderr), r.stderr


def test_kyverno_refuses_an_ephemeral_container_with_another_image(platform, spawned):
    """`kubectl debug`: an ephemeral container added to an admitted pod by the subresource."""
    c = platform.cluster
    name = "ephemeral-target"
    r = _create(c, _with(spawned, name, lambda p: None), LAB)
    assert r.returncode == 0, r.stderr
    try:
        patch = {"spec": {"ephemeralContainers": [{
            "name": "debugger", "image": "docker.io/library/busybox:1.36", "command": ["sh"],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}
        r = c.kubectl("patch", "pod", name, "-n", LAB, "--subresource=ephemeralcontainers", "--type=strategic",
                      "-p", json.dumps(patch), check=False)
        _refused_by(r, [("insitu-workspace-images", "allowed-images")])
        assert not c.get("pod", name, "-n", LAB)["spec"].get("ephemeralContainers")
    finally:
        c.kubectl("delete", "pod", name, "-n", LAB, "--wait=false")


def test_a_closed_session_refuses_the_pod(platform, spawned, monkeypatch):
    async def go():
        sp, plan, sent = await _spawn_pod(platform, monkeypatch, datasets=["ds-lung-pet-v2"], create=False)
        await sp.close_dataset_session()  # the session ends (revocation, stop): its pod is refused
        return sent
    sent = asyncio.run(go())
    r = _create(platform.cluster, _with(sent, "after-session-closed", lambda p: None), LAB)
    _refused_by(r, [("insitu-workspace-datasets", "session-covers-datasets")])


def _fixture_expectations():
    """(suite, fixture pod, rules expected to fail, rules expected to pass) from kyverno/tests."""
    out = []
    for suite in SUITES:
        test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
        pods = {d["metadata"]["name"]: d for f in test["resources"]
                for d in yaml.safe_load_all((suite / f).read_text()) if d and d["kind"] == "Pod"}
        verdicts: dict[str, dict[str, set]] = {}
        for r in test["results"]:
            for name in r["resources"]:
                if name in pods:
                    verdicts.setdefault(name, {}).setdefault(r["result"], set()).add((r["policy"], r["rule"]))
        for name, v in sorted(verdicts.items()):
            if pods[name]["metadata"].get("namespace", "default") == WS:
                out.append((suite.name, pods[name], v.get("fail", set()), v.get("pass", set())))
    return out


FIXTURES = _fixture_expectations()
# Fixtures that the API server itself refuses as invalid, before any admission plugin:
# no cluster can hold them, so Kyverno never sees them (its verdict on them is the CLI's).
INVALID = {
    "gateway-twice": "Duplicate value",  # two containers named gateway
    "images-ephemeral-container": "cannot be set on create",  # ephemeral containers come by the subresource
    "limits-empty-memory": "quantities must match",  # "" is no quantity
    "security-privileged": "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
}


@pytest.mark.parametrize("suite, pod, fail, passed", FIXTURES,
                         ids=[f"{s}/{p['metadata']['name']}" for s, p, _, _ in FIXTURES])
def test_kyverno_gives_every_fixture_its_expected_verdict(platform, suite, pod, fail, passed):
    """Each fixture pod of kyverno/tests, created in a workspace namespace: every rule its
    suite expects to fail names it; no rule its suite expects to pass does. (Every fixture
    is refused here: its session s-0001 is not open at the real dataset service, so the
    session rule is left out of the pass side.)"""
    c = platform.cluster
    r = _create(c, pod, LAB)
    try:
        assert r.returncode != 0, f"{pod['metadata']['name']} admitted"
        if pod["metadata"]["name"] in INVALID:
            assert INVALID[pod["metadata"]["name"]] in r.stderr and "admission webhook" not in r.stderr, r.stderr
            return
        _refused_by(r, sorted(fail))
        for policy, rule in passed - {("insitu-workspace-datasets", "session-covers-datasets")}:
            block = _policy_block(r.stderr, policy)
            assert f"{rule}:" not in block, (policy, rule, r.stderr)
    finally:
        if r.returncode == 0:
            c.kubectl("delete", "pod", pod["metadata"]["name"], "-n", LAB, "--wait=false")


def _policy_block(msg: str, policy: str) -> str:
    """The lines of Kyverno's refusal under ``<policy>:`` (its rules and their messages)."""
    lines, out, inside = msg.splitlines(), [], False
    for line in lines:
        if line and not line.startswith(" "):
            inside = line.rstrip().endswith(f"{policy}:") or line.strip() == f"{policy}:"
            continue
        if inside:
            out.append(line)
    return "\n".join(out)


# --- the generated egress policy ---------------------------------------------------------
def _egress_policy(c: Cluster, ns: str):
    r = c.kubectl("get", "networkpolicy", "insitu-default-deny-egress", "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_kyverno_generates_and_restores_default_deny_egress(platform):
    c = platform.cluster
    expected = yaml.safe_load((ROOT / "kyverno" / "tests" / "workspace-egress" /
                               "generated-networkpolicy.yaml").read_text())
    for ns in (WS, LAB):  # the chart's namespace and one labelled later
        np = wait_until(f"the egress policy of {ns}", lambda: _egress_policy(c, ns), 120)
        assert np["spec"] == expected["spec"], np
        assert expected["metadata"]["labels"].items() <= np["metadata"]["labels"].items()
    # deleted by someone: Kyverno puts it back (synchronize)
    uid = _egress_policy(c, WS)["metadata"]["uid"]
    c.kubectl("delete", "networkpolicy", "insitu-default-deny-egress", "-n", WS)
    back = wait_until("the egress policy to come back",
                      lambda: (np := _egress_policy(c, WS)) and np["metadata"]["uid"] != uid and np, 120)
    assert back["spec"] == expected["spec"]
    # namespaces not labelled as workspaces get none
    fixtures = [d for d in yaml.safe_load_all((ROOT / "kyverno" / "tests" / "workspace-egress" /
                                               "resources-bypass.yaml").read_text()) if d]
    c.apply(fixtures)
    probe = "insitu-egress-probe"
    c.apply([{"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": probe, "labels": {"insitu.io/workspaces": "true"}}}])
    wait_until(f"the egress policy of {probe}", lambda: _egress_policy(c, probe), 120)
    for d in fixtures:
        assert _egress_policy(c, d["metadata"]["name"]) is None
