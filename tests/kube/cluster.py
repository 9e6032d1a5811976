"""A real Kubernetes control plane for the tests, everything under a temporary folder.

* ``kine`` (the etcd API over SQLite, k3s-io/kine v0.17.5) on a Unix socket;
* ``kube-apiserver`` (k8s.io/kubernetes v1.36.3) on 127.0.0.1, with certificates
  generated here: a cluster CA, the server's certificate, an admin client
  certificate (group ``system:masters``) and the service-account signing key,
  so that the TokenRequest API issues real service-account tokens; RBAC is the
  only authorizer and the default admission plugins run (PodSecurity,
  ServiceAccount, DefaultTolerationSeconds, webhooks, ...);
* Kyverno's admission controller (``cmd/kyverno`` of kyverno v1.19.1) and its
  background controller (generate rules), out of cluster, each with a token of its own
  ServiceAccount and the RBAC of Kyverno's chart (plus kyverno/rbac/): the admission
  controller registers its webhooks with the URL ``https://127.0.0.1:<port>``
  (``--serverIP``), so the API server calls it over loopback TLS with the CA
  Kyverno generated and stored in its Secret.

The binaries are built by ``scripts/setup.d/31-kube-cluster.sh`` into
``${INSITU_CACHE:-~/.cache/insitu}/bin``. What no process here provides: no
kube-controller-manager (the ``default`` ServiceAccount of a namespace, which
its service-account controller would create, is created by ``ensure_default_sa``),
no scheduler, no kubelet: pods are stored, never run.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .kubetools import CACHE, ROOT, run, tool

BIN = CACHE / "bin"
CONTROL_PLANE = ("kine", "kube-apiserver")
KYVERNO = ("kyverno-admission-controller", "kyverno-background-controller")
KYVERNO_NS = "kyverno"


def missing(names) -> list[str]:
    return [str(BIN / n) for n in names if not os.access(BIN / n, os.X_OK)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- certificates ---------------------------------------------------------------
def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: x509.Name, key, issuer: x509.Name, signer, *, ca=False, sans=(), client=False):
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    else:
        usage = x509.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return b.sign(signer, hashes.SHA256())


def _name(cn: str, *orgs: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
                     + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(d: Path) -> dict[str, Path]:
    """Cluster CA, server and admin client certificates, service-account key pair."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("insitu-test-cluster-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert(_name("kube-apiserver"), srv_key, ca_name, ca_key, sans=[
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc")])
    adm_key = ec.generate_private_key(ec.SECP256R1())
    adm = _cert(_name("insitu-test-admin", "system:masters"), adm_key, ca_name, ca_key, client=True)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "server.crt": srv.public_bytes(serialization.Encoding.PEM), "server.key": _pem_key(srv_key),
        "admin.crt": adm.public_bytes(serialization.Encoding.PEM), "admin.key": _pem_key(adm_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    out = {}
    for name, data in files.items():
        p = d / (name + (".crt" if name == "ca" else ""))
        p.write_bytes(data)
        p.chmod(0o600)
        out[name] = p
    return out


# --- processes --------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def spawn(name: str, args: list[str], workdir: Path, env: dict | None = None) -> Proc:
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=workdir, env=dict(os.environ, **(env or {})), start_new_session=True)
    return Proc(name, p, log)


class _Retry(Exception):
    """A transient failure: wait_until tries again."""


def wait_until(what: str, check, timeout: float, procs=(), interval: float = 0.5, retry_on=Exception):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited ({p.popen.returncode}) while waiting for {what}:\n{p.tail()}")
        try:
            got = check()
            if got:
                return got
        except retry_on as e:  # retried until the deadline
            last = e
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})\n{logs}")


# --- the API server ---------------------------------------------------------------------
@dataclass
class Cluster:
    workdir: Path
    port: int
    pki: dict[str, Path]
    procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def write_kubeconfig(self, path: Path, user: dict) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "insitu-test", "cluster": {"server": self.url,
                                                             "certificate-authority": str(self.pki["ca"])}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "insitu-test", "user": "u"}}],
            "current-context": "c"}))
        path.chmod(0o600)
        return path

    def token_kubeconfig(self, name: str, token: str) -> Path:
        return self.write_kubeconfig(self.workdir / f"{name}.kubeconfig", {"token": token})

    def kubectl(self, *args: str, kubeconfig: Path | None = None, input: str | None = None,
                check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        r = subprocess.run([tool("kubectl"), "--kubeconfig", str(kubeconfig or self.admin_kubeconfig), *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr[-3000:]}")
        return r

    def get(self, *args: str, kubeconfig: Path | None = None) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(self, docs: list[dict], *, server_side: bool = False, timeout: float = 90) -> None:
        """kubectl apply; retried while a webhook cannot be called yet (a controller starting:
        "failed calling webhook"), never when a webhook or the server refuses the objects."""
        text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
        extra = ["--server-side", "--force-conflicts"] if server_side else []

        def once():
            r = self.kubectl("apply", *extra, "-f", "-", input=text, check=False)
            if r.returncode != 0 and "failed calling webhook" not in r.stderr:
                raise RuntimeError(f"kubectl apply failed ({r.returncode}): {r.stderr[-3000:]}")
            if r.returncode != 0:
                raise _Retry(r.stderr[-1000:])
            return True
        wait_until("kubectl apply", once, timeout, (), 2, retry_on=_Retry)

    def token(self, namespace: str, service_account: str, duration: str = "2h") -> str:
        """A bound token of the ServiceAccount from the TokenRequest API."""
        return self.kubectl("create", "token", service_account, "-n", namespace,
                            f"--duration={duration}").stdout.strip()

    def ensure_default_sa(self, namespace: str) -> None:
        """What kube-controller-manager's service-account controller does (not run here)."""
        r = self.kubectl("create", "serviceaccount", "default", "-n", namespace, check=False)
        if r.returncode != 0 and "AlreadyExists" not in r.stderr:
            raise RuntimeError(r.stderr)

    def http(self) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.pki["ca"]))
        ctx.load_cert_chain(str(self.pki["admin.crt"]), str(self.pki["admin.key"]))
        return httpx.Client(base_url=self.url, verify=ctx, timeout=30)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def start_cluster(workdir: Path, timeout: float = 240) -> Cluster:
    """kine on a Unix socket, kube-apiserver on 127.0.0.1; returns when /readyz answers ok."""
    workdir.mkdir(parents=True, exist_ok=True)
    pki = make_pki(workdir / "pki")
    c = Cluster(workdir=workdir, port=free_port(), pki=pki)
    sock = workdir / "kine.sock"
    try:
        c.procs.append(spawn("kine", [
            str(BIN / "kine"), "--endpoint", f"sqlite://{workdir / 'kine.db'}?_journal=WAL&cache=shared",
            "--listen-address", f"unix://{sock}", "--metrics-bind-address", "0"], workdir))
        wait_until("kine's socket", sock.exists, 60, c.procs, 0.2)
        issuer = "https://kubernetes.default.svc.cluster.local"
        c.procs.append(spawn("kube-apiserver", [
            str(BIN / "kube-apiserver"),
            f"--etcd-servers=unix://{sock}", "--storage-backend=etcd3",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={c.port}",
            f"--tls-cert-file={pki['server.crt']}", f"--tls-private-key-file={pki['server.key']}",
            f"--client-ca-file={pki['ca']}",
            f"--service-account-issuer={issuer}", f"--api-audiences={issuer}",
            f"--service-account-key-file={pki['sa.pub']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--authorization-mode=RBAC", "--anonymous-auth=false",
            "--allow-privileged=true",  # as a cluster runs it (kubeadm): privilege is Kyverno's to refuse
            "--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
            f"--cert-dir={workdir / 'apiserver-certs'}", "--profiling=false", "--enable-priority-and-fairness=false",
            "--v=1"], workdir))
        c.admin_kubeconfig.parent.mkdir(exist_ok=True)
        c.write_kubeconfig(c.admin_kubeconfig, {"client-certificate": str(pki["admin.crt"]),
                                                "client-key": str(pki["admin.key"])})

        def ready():
            with c.http() as h:
                return h.get("/readyz").status_code == 200
        wait_until("kube-apiserver /readyz", ready, timeout, c.procs, 1)
        # the bootstrap RBAC roles (cluster-admin, ...) are in place once /readyz is ok
        return c
    except BaseException:
        c.stop()
        raise


# --- Kyverno -------------------------------------------------------------------
def kyverno_module_dir() -> Path:
    """The kyverno module as the set-up downloaded it (Go's module cache)."""
    mod = (ROOT / "tools" / "kyverno" / "go.mod").read_text()
    version = next(line.split()[2] for line in mod.splitlines()
                   if line.strip().startswith("require github.com/kyverno/kyverno "))
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(cache) / "github.com" / "kyverno" / f"kyverno@{version}"
    if not (path / "charts" / "kyverno").is_dir():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup.d/31-kube-cluster.sh")
    return path


def _aggregate(roles: list[dict]) -> None:
    """What the clusterrole-aggregation controller (kube-controller-manager) does:
    fill each aggregated ClusterRole with the rules of the roles its selectors pick."""
    for r in roles:
        sel = (r.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if not sel:
            continue
        rules = []
        for s in sel:
            want = s.get("matchLabels") or {}
            for o in roles:
                labels = o["metadata"].get("labels") or {}
                if o is not r and all(labels.get(k) == v for k, v in want.items()):
                    rules += o.get("rules") or []
        r["rules"] = rules


def kyverno_install_docs(workdir: Path) -> list[dict]:
    """Kyverno as its chart installs it, less what runs here as processes: its CRDs
    (config/crds of the module), and from `helm template` of charts/kyverno its ConfigMaps,
    ServiceAccounts and RBAC, with the project's own rights for Kyverno (kyverno/rbac/),
    the aggregated ClusterRoles filled as kube-controller-manager would. The chart's three dependencies from remote
    repositories (kyverno-api, openreports, reports-server: CRDs and an optional server)
    are dropped; its Deployments, Services and Jobs are left out (the controllers register
    their webhooks themselves)."""
    module = kyverno_module_dir()
    chart = workdir / "kyverno-chart"
    shutil.copytree(module / "charts" / "kyverno", chart)
    for d, _, files in os.walk(chart):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"] = [d for d in meta["dependencies"] if "repository" not in d]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    r = run([tool("helm"), "template", "kyverno", str(chart), "-n", KYVERNO_NS, "--skip-tests",
             "--set", "crds.install=false"], home=workdir / "helm-kyverno")
    if r.returncode != 0:
        raise RuntimeError(f"helm template of Kyverno's chart failed: {r.stderr[-3000:]}")
    keep = {"ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    docs = [d for d in yaml.safe_load_all(r.stdout) if d and d.get("kind") in keep]
    docs += [d for p in sorted((ROOT / "kyverno" / "rbac").glob("*.yaml"))
             for d in yaml.safe_load_all(p.read_text()) if d]
    _aggregate([d for d in docs if d["kind"] == "ClusterRole"])
    crds = [d for p in sorted((module / "config" / "crds").rglob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    return crds + docs


@dataclass
class Kyverno:
    cluster: Cluster
    webhook_port: int
    procs: list[Proc] = field(default_factory=list)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


KYVERNO_ENV = {"KYVERNO_NAMESPACE": KYVERNO_NS, "KYVERNO_DEPLOYMENT": "kyverno-admission-controller",
               "KYVERNO_POD_NAME": "insitu-test", "INIT_CONFIG": "kyverno", "METRICS_CONFIG": "kyverno-metrics",
               "KYVERNO_SVC": "kyverno-svc"}
# Kyverno's default apiCall blocklist without loopback (the dataset service listens on
# 127.0.0.1 here); --httpAllowlist narrows apiCalls to that one service.
HTTP_BLOCKLIST = "169.254.169.254/32,169.254.169.253/32,fd00:ec2::254/128,metadata.google.internal"


def start_kyverno(cluster: Cluster, workdir: Path, *, http_allow: list[str], timeout: float = 240) -> Kyverno:
    """Kyverno's CRDs, config and RBAC from its chart, then its admission and background
    controllers as processes; returns when the admission controller's webhooks are
    registered with the API server and its webhook server answers on loopback TLS."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster.kubectl("create", "namespace", KYVERNO_NS)
    docs = kyverno_install_docs(workdir)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    cluster.apply(crds, server_side=True)
    for d in crds:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{d['metadata']['name']}", "--timeout=120s")
    cluster.apply([d for d in docs if d["kind"] != "CustomResourceDefinition"], server_side=True)

    k = Kyverno(cluster=cluster, webhook_port=free_port())
    sa = f"system:serviceaccount:{KYVERNO_NS}:"
    # each controller with its own ServiceAccount's token: the chart's RBAC, for real
    admission, background = (cluster.token_kubeconfig(n, cluster.token(KYVERNO_NS, n, "24h")) for n in
                             ("kyverno-admission-controller", "kyverno-background-controller"))
    common = ["--metricsHost=127.0.0.1",
              "--controllerRuntimeMetricsAddress=0", "--disableMetrics=true", "--loggingFormat=text",
              "--disableLogColor=true", "--autoMemLimitEnabled=false"]
    try:
        k.procs.append(spawn("kyverno-admission-controller", [
            str(BIN / "kyverno-admission-controller"), *common, f"--kubeconfig={admission}",
            f"--metricsPort={free_port()}",
            f"--serverIP=127.0.0.1:{k.webhook_port}", "--webhookServerHost=127.0.0.1",
            f"--webhookServerPort={k.webhook_port}",
            "--caSecretName=kyverno-svc.kyverno.svc.kyverno-tls-ca",
            "--tlsSecretName=kyverno-svc.kyverno.svc.kyverno-tls-pair",
            f"--backgroundServiceAccountName={sa}kyverno-background-controller",
            f"--reportsServiceAccountName={sa}kyverno-reports-controller",
            "--admissionReports=false", "--webhookTimeout=30", f"--httpBlocklist={HTTP_BLOCKLIST}",
            f"--httpAllowlist={','.join(http_allow)}"],
            workdir, dict(KYVERNO_ENV, KYVERNO_SERVICEACCOUNT_NAME="kyverno-admission-controller")))
        k.procs.append(spawn("kyverno-background-controller", [
            str(BIN / "kyverno-background-controller"), *common, f"--kubeconfig={background}",
            f"--metricsPort={free_port()}",
            f"--httpBlocklist={HTTP_BLOCKLIST}", f"--httpAllowlist={','.join(http_allow)}"],
            workdir, dict(KYVERNO_ENV, KYVERNO_SERVICEACCOUNT_NAME="kyverno-background-controller")))

        def registered():
            out = cluster.kubectl("get", "validatingwebhookconfigurations", "-o", "json").stdout
            names = {w["metadata"]["name"] for w in json.loads(out)["items"]}
            return {"kyverno-policy-validating-webhook-cfg", "kyverno-resource-validating-webhook-cfg"} <= names
        wait_until("Kyverno's webhook configurations", registered, timeout, k.procs, 2)

        ca = base64.b64decode(cluster.get("secret", "-n", KYVERNO_NS, "kyverno-svc.kyverno.svc.kyverno-tls-ca")
                              ["data"]["tls.crt"])
        (workdir / "kyverno-ca.crt").write_bytes(ca)

        def serving():
            with httpx.Client(verify=str(workdir / "kyverno-ca.crt"), timeout=5) as h:
                return h.get(f"https://127.0.0.1:{k.webhook_port}/health/liveness").status_code == 200
        wait_until("Kyverno's webhook server", serving, 60, k.procs, 1)
        return k
    except BaseException:
        k.stop()
        raise


def apply_policies(cluster: Cluster, paths: list[Path], timeout: float = 180) -> list[str]:
    """Apply ClusterPolicies and wait until Kyverno reports each Ready (webhooks configured)."""
    docs = [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]
    cluster.apply(docs)
    names = [d["metadata"]["name"] for d in docs]

    def ready():
        items = cluster.get("clusterpolicies")["items"]
        st = {i["metadata"]["name"]: i.get("status", {}).get("conditions", []) for i in items}
        return all(any(c["type"] == "Ready" and c["status"] == "True" for c in st.get(n, [])) for n in names)
    wait_until("the ClusterPolicies to be Ready", ready, timeout, (), 2)
    return names
