"""The chart's liveness, readiness and start-up probes answer on the real services, without credentials.

The chart is rendered by real helm (as in test_helm_render.py); the probe paths and ports are read
from the rendered Deployments, not from the code. Each platform service (dataset service, tracer) is
then started as its image starts it (``python -m <service> serve``) with the environment the rendered
Deployment sets (Secrets filled in, in-cluster names pointed at a closed loopback port, a real
PostgreSQL database as in production), and each probe is called as the kubelet calls it: a plain GET,
no token, no cookie. It must answer 200 and say nothing but ``ok``; readiness must fall to 503 (still
saying nothing) while the database refuses connections, and come back when it accepts them again.
The ``helm test`` pod calls a path the same service answers. The chart's PostgreSQL probes
(``pg_isready`` commands) are run as rendered against a real PostgreSQL server.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from fixtures.jupyterhub import free_port
from fixtures.postgres import create_database

from .kubetools import CHART, ROOT
from .test_helm_render import _values_args, chart, helm_template  # noqa: F401 - chart: the fixture

pytestmark = pytest.mark.postgres
SERVICES = {"dataset-service": "dataset_service", "tracer": "tracer"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@pytest.fixture(scope="module")
def manifests(chart):  # noqa: F811 - the fixture imported above
    r = helm_template(chart, *_values_args(chart, CHART / "examples" / "minimal.yaml"))
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def containers(docs) -> dict[str, dict]:
    out = {}
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                out[c["name"]] = c
    return out


def probe_targets(container: dict) -> dict[str, tuple[str, int]]:
    """probe kind -> (path, container port), the named port resolved as the kubelet does."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    out = {}
    for kind in PROBES:
        get = container[kind]["httpGet"]
        port = get["port"]
        out[kind] = (get["path"], ports[port] if isinstance(port, str) else port)
    return out


def test_every_platform_service_has_http_probes(manifests):
    found = containers(manifests)
    for name in SERVICES:
        targets = probe_targets(found[name])
        assert set(targets) == set(PROBES)
        for path, _ in targets.values():
            # outside the service prefix: the hub's proxy never routes a probe path to the service
            assert not path.startswith("/services/"), path


def _service_env(container: dict, db_url: str, tmp: Path) -> dict[str, str]:
    """The rendered container's environment, with what only a cluster has filled in locally."""
    env = {}
    for e in container.get("env", []):
        if "valueFrom" in e:
            key = e["valueFrom"]["secretKeyRef"]["key"]
            value = {"url": db_url, "key": "0x" + "11" * 32}.get(key, secrets.token_hex(16))
        else:
            value = str(e["value"])
        if value.startswith("/srv/"):  # a mounted volume
            value = str(tmp / value.strip("/").replace("/", "-"))
            os.makedirs(value, exist_ok=True)
        # in-cluster names (hub, Besu, the tracer) -> a closed loopback port: nothing leaves this machine
        value = re.sub(r"^http://[a-z][\w.-]*:\d+", "http://127.0.0.1:9", value)
        env[e["name"]] = value
    return env


class Service:
    def __init__(self, name: str, container: dict, db_url: str, tmp: Path):
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSITU_", "TRACER_", "JUPYTERHUB_"))}
        env.update(_service_env(container, db_url, tmp), PYTHONPATH=str(ROOT))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", SERVICES[name], "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=10)  # no token, no cookie

    def wait(self, path: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                self.get(path)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> int:
        """SIGTERM to the service's process group (its own session), as the kubelet stops a container;
        returns the exit status."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


@pytest.fixture
def db_url(pg_cluster):
    """A new, empty PostgreSQL database for one service (each runs its own migrations)."""
    url = create_database(pg_cluster, "probe_")
    yield url
    with psycopg.connect(pg_cluster[1], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _allow_connections(pg_cluster, db_url: str, allow: bool) -> None:
    port, admin = pg_cluster
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_rendered_probes_answer_on_the_running_service_without_credentials(
        manifests, name, pg_cluster, db_url, tmp_path):
    container = containers(manifests)[name]
    targets = probe_targets(container)
    # the container port the probes name is the one the image's command serves on
    assert {port for _, port in targets.values()} == {container["ports"][0]["containerPort"]}
    svc = Service(name, container, db_url, tmp_path)
    try:
        svc.wait(targets["livenessProbe"][0])
        for kind, (path, _) in targets.items():
            r = svc.get(path)
            assert (r.status_code, r.text) == (200, "ok"), (kind, path, r.status_code, r.text)
        # the same service refuses its detailed health without a hub token: the probes are not a way around it
        prefix = "/services/" + name
        assert svc.get(prefix + "/openapi.json").status_code == 200
        if name == "tracer":
            assert svc.get(prefix + "/health").status_code == 401
        # readiness follows the database, and says nothing about why
        ready, live = targets["readinessProbe"][0], targets["livenessProbe"][0]
        _allow_connections(pg_cluster, db_url, False)
        try:
            r = svc.get(ready)
            assert (r.status_code, r.text) == (503, "not ready")
            assert svc.get(live).status_code == 200  # alive: no restart for a database outage
        finally:
            _allow_connections(pg_cluster, db_url, True)
        r = svc.get(ready)
        assert (r.status_code, r.text) == (200, "ok")
    finally:
        status = svc.stop()
    # a clean shutdown on SIGTERM (uvicorn re-raises the signal once it has shut down)
    assert status in (0, -signal.SIGTERM) and "Application shutdown complete" in svc.log.read_text(), status
    assert "Traceback" not in svc.log.read_text(), svc.log.read_text()[-3000:]


def test_helm_test_pod_calls_a_probe_path(manifests, chart):  # noqa: F811
    r = helm_template(chart, *_values_args(chart, CHART / "examples" / "minimal.yaml"), "--show-only",
                      "templates/tests/test-platform.yaml")
    assert r.returncode == 0, r.stderr
    script = yaml.safe_load(r.stdout)["spec"]["containers"][0]["args"][0]
    tracer = probe_targets(containers(manifests)["tracer"])
    called = re.findall(r'get\("http://insitu-tracer:(\d+)(/[^"]*)"\)', script)
    assert called == [(str(tracer["readinessProbe"][1]), tracer["readinessProbe"][0])]


def test_the_rendered_postgresql_probes_run_against_a_real_server(manifests, pg_cluster):
    """The chart's PostgreSQL probes are commands: each one is run as rendered, with Debian's
    PostgreSQL client tools (the image's are the same programs), against the tests' real server
    (its port through PGPORT, as the image's server listens on the default 5432)."""
    from fixtures.postgres import PG_BIN

    container = containers(manifests)["postgresql"]
    env = dict(os.environ, PATH=f"{PG_BIN}:{os.environ['PATH']}", PGPORT=str(pg_cluster[0]), PGCONNECT_TIMEOUT="5")
    for kind in PROBES:
        cmd = container[kind]["exec"]["command"]
        assert cmd[0] == "pg_isready", cmd
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (kind, r.stdout, r.stderr)
        closed = subprocess.run(cmd, env=dict(env, PGPORT=str(free_port())), capture_output=True, text=True,
                                timeout=30)
        assert closed.returncode != 0, (kind, closed.stdout)  # no server: the probe fails


# --- the helm test pod reaches what it calls, under the chart's NetworkPolicies -------------

def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        have = e["key"] in labels
        ok = {"In": have and labels[e["key"]] in e.get("values", []),
              "NotIn": not have or labels[e["key"]] not in e.get("values", []),
              "Exists": have, "DoesNotExist": not have}[e["operator"]]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict, policy_ns: str, ns: str, labels: dict) -> bool:
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != policy_ns:
        return False
    return _selects(peer.get("podSelector") or {}, labels)


def flow_allowed(policies, src: tuple[str, dict], dst: tuple[str, dict], port: int, protocol: str = "TCP") -> bool:
    """Kubernetes NetworkPolicy semantics for one connection: the source's egress and the
    destination's ingress must each be allowed by some policy selecting the pod (or by none
    selecting it in that direction)."""
    def side(direction: str, pod: tuple[str, dict], other: tuple[str, dict]) -> bool:
        key = {"Ingress": "from", "Egress": "to"}[direction]
        chosen = [p for p in policies if p["metadata"].get("namespace", "insitu") == pod[0]
                  and direction in p["spec"].get("policyTypes", ["Ingress"])
                  and _selects(p["spec"]["podSelector"], pod[1])]
        if not chosen:
            return True
        for p in chosen:
            for rule in p["spec"].get(direction.lower()) or []:
                peers_ok = key not in rule or any(
                    _peer_matches(peer, p["metadata"].get("namespace", "insitu"), *other) for peer in rule[key])
                ports_ok = "ports" not in rule or any(
                    pt.get("port") in (None, port) and pt.get("protocol", "TCP") == protocol for pt in rule["ports"])
                if peers_ok and ports_ok:
                    return True
        return False

    return side("Egress", src, dst) and side("Ingress", dst, src)


def test_helm_test_pod_reaches_what_it_calls_under_the_network_policies(manifests, chart):  # noqa: F811
    r = helm_template(chart, *_values_args(chart, CHART / "examples" / "minimal.yaml"), "--show-only",
                      "templates/tests/test-platform.yaml")
    pod = yaml.safe_load(r.stdout)
    src = ("insitu", pod["metadata"]["labels"])
    policies = [d for d in manifests if d["kind"] == "NetworkPolicy"]
    services = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Service"}
    workloads = [d["spec"]["template"] for d in manifests if d["kind"] in ("Deployment", "StatefulSet")]
    dns = ("kube-system", {"k8s-app": "kube-dns"})
    assert flow_allowed(policies, src, dns, 53, "UDP")  # it resolves the Service names
    calls = re.findall(r"http://([\w-]+):(\d+)", pod["spec"]["containers"][0]["args"][0])
    assert {name for name, _ in calls} == {"insitu-tracer", "insitu-besu-rpc"}
    for name, port in calls:
        svc = services[name]["spec"]
        sp = next(p for p in svc["ports"] if p["port"] == int(port))
        target = next(t for t in workloads if _selects({"matchLabels": svc["selector"]}, t["metadata"]["labels"]))
        cports = {p.get("name"): p["containerPort"] for c in target["spec"]["containers"] for p in c.get("ports", [])}
        tport = cports[sp["targetPort"]] if isinstance(sp["targetPort"], str) else sp["targetPort"]
        assert flow_allowed(policies, src, ("insitu", target["metadata"]["labels"]), tport), (name, tport)
    # and the evaluator bites: the workspaces may not reach the tracer
    tracer = next(t for t in workloads if t["metadata"]["labels"].get("app.kubernetes.io/component") == "tracer")
    assert not flow_allowed(policies, ("insitu-workspaces", {}), ("insitu", tracer["metadata"]["labels"]), 8102)
