"""The images of images/, built with podman here and started.

Default suite: each Dockerfile starts from the local Debian base and installs its
component with that component's declared dependencies (no hand-picked pins, no
``--no-deps``): a service image installs the insitu distribution with exactly its
component's optional-dependency group (``/src[tracer]``, ...), and inside the built
image the installed distributions are exactly what that group needs, nothing
another component needs. The service images (dataset service, tracer, hub) are
built for real and started with no network at all: the dataset service and the
tracer answer over HTTP inside their container (OpenAPI document with the version,
health refused without a hub token, the chart's probes ``/livez`` and ``/readyz``
answered without one), the hub image imports InsituKubeSpawner and turns the
chart's environment into a configuration whose spawner carries the insitu-hub
token. The notebook image's ``server`` stage (the server, JupyterLab and the
lock-down, without the science stack) is built and started: its server refuses
``/files/``, ``?download=1`` and nbconvert (the lock-down is loaded under the
module name its configuration enables). The pinned torch wheel (the set-up's
wheelhouse) is a CUDA build.

Marked ``slow`` (heavy: several GB of CUDA wheels; a desktop session's Debian
packages): the full notebook image (the same server stage plus the science stack:
its installed torch is the CUDA build) and the desktop image.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest

from insitu.probes import LIVE_PATH, READY_PATH

from . import images
from .kubetools import ROOT

IMAGES = ["notebook", "desktop", "hub", "dataset-service", "tracer"]
SERVICE_IMAGES = ["hub", "dataset-service", "tracer"]  # the insitu distribution with one component's group


def test_each_service_image_has_its_own_dependency_group():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []  # nothing every component installs besides its group
    groups = project["optional-dependencies"]
    for image in SERVICE_IMAGES:
        assert "insitu[core]" in groups[image]
    # the development environment is every component at once
    dev = next(r for r in groups["dev"] if r.startswith("insitu["))
    assert set(SERVICE_IMAGES) | {"core"} <= set(dev[len("insitu["):-1].split(","))


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_builds_from_the_local_base_with_declared_dependencies(image):
    df = (ROOT / "images" / image / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=localhost/insitu-base:bookworm$", df, re.M)
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", df, re.M)
    assert froms[0][0] == "${BASE}", froms  # every stage from the local base or from an earlier stage
    assert all(f == "${BASE}" or f in {stage for _, stage in froms} for f, _ in froms), froms
    text = df.replace("\\\n", " ")
    installs = re.findall(r"pip install ([^&\n]*)", text)
    assert installs, "no package installed?"
    for args in installs:
        assert "--no-deps" not in args
        words = [w.strip('"') for w in args.split() if not w.startswith("-")]
        # what is installed: the project with its component's group (/src[<group>]) or a requirements file
        assert all(w.startswith("/") for w in words), f"{image}: hand-picked packages {words}"
        assert re.search(r"-c (/src|/tmp/build)/constraints.txt", args)
        if image in SERVICE_IMAGES:
            installed = [w for w in words if not w.endswith("/constraints.txt")]
            assert installed == [f"/src[{image}]"], f"{image} installs {installed}, not its own group"
    # the constraints are the lock, less only what Debian's Python 3.11.2 cannot take
    assert set(re.findall(r"grep -v '\^(\S+)==' \S+/requirements.lock > \S+/constraints.txt", text)) == {"soupsieve"}
    users = re.findall(r"^USER (\S+)$", df, re.M)
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), f"{image} runs as {users[-1:]}: not a non-root uid"


@pytest.mark.parametrize("image", ["notebook", "desktop"])
def test_workspace_images_install_the_lockdown_under_the_module_name_the_server_enables(image):
    df = (ROOT / "images" / image / "Dockerfile").read_text()
    config = json.loads((ROOT / "hub" / "workspace" / "etc" / "jupyter" / "jupyter_server_config.json").read_text())
    enabled = [m for m, on in config["ServerApp"]["jpserver_extensions"].items() if on]
    pythonpath = re.search(r"PYTHONPATH=(\S+)", df).group(1)
    copied = dict(re.findall(r"^COPY (hub/workspace) (\S+)$", df, re.M))
    for module in enabled:
        assert copied.get("hub/workspace") == f"{pythonpath}/{module}"
    conf_path = re.search(r"JUPYTER_CONFIG_PATH=(\S+)", df).group(1)
    assert conf_path == f"{copied['hub/workspace']}/etc/jupyter"


def test_workspace_images_are_the_ones_the_policies_allow():
    from hub.kube import KubeOptions
    from hub.preflight import PreflightConfig, wildcard_match

    for ref in (KubeOptions().notebook_image, KubeOptions().desktop_image):
        assert any(wildcard_match(p, ref) for p in PreflightConfig().allowed_images)


# --- built and started --------------------------------------------------------

@pytest.fixture(scope="module")
def podman_ready():
    why = images.why_not()
    if why:
        pytest.skip(why)


def _run_detached(ref: str, env: dict[str, str], *cmd: str) -> str:
    name = "insitu-test-" + secrets.token_hex(4)
    args = ["run", "-d", "--rm", "--name", name, "--network", "none", "--read-only", "--tmpfs", "/tmp",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    images.podman(*args, ref, *cmd)
    return name


# Inside an image: the distributions the component's group needs (the installed metadata's own
# requirements, recursively, markers evaluated) against those installed.
CLOSURE = """
import importlib.metadata as m, json, re, sys
from pip._vendor.packaging.requirements import Requirement
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
todo, seen, missing = [("insitu", (sys.argv[1],))], set(), []
while todo:
    name, extras = todo.pop()
    if (norm(name), extras) in seen:
        continue
    seen.add((norm(name), extras))
    try:
        dist = m.distribution(name)
    except m.PackageNotFoundError:
        missing.append(name)
        continue
    for r in dist.requires or []:
        req = Requirement(r)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("",) + extras):
            todo.append((req.name, tuple(sorted(req.extras))))
needed = {n for n, _ in seen}
installed = {norm(d.metadata["Name"]) for d in m.distributions()}
print(json.dumps({"missing": sorted(missing), "unneeded": sorted(installed - needed - {"pip", "setuptools", "wheel"}),
                  "installed": sorted(installed)}))
"""
# what another component needs and this one must not carry
FOREIGN = {"dataset-service": {"web3", "kubernetes", "jupyterhub-kubespawner", "python-keycloak"},
           "tracer": {"pydicom", "kubernetes", "jupyterhub-kubespawner", "python-keycloak"},
           "hub": {"web3", "pydicom", "coincurve", "psycopg"}}


def _assert_exactly_its_group(ctr: str, group: str) -> None:
    p = images.podman("exec", ctr, "python", "-c", CLOSURE, group)
    found = json.loads(p.stdout)
    assert found["missing"] == [] and found["unneeded"] == [], found
    assert not FOREIGN[group] & set(found["installed"]), FOREIGN[group] & set(found["installed"])


PROBE = """
import json, sys, time, urllib.request, urllib.error
url = sys.argv[1]
deadline = time.monotonic() + 90
while True:
    try:
        r = urllib.request.urlopen(url, timeout=5)
        body = r.read()
        print(json.dumps({"status": r.status, "body": json.loads(body) if body[:1] in (b"{", b"[") else None}))
        break
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "body": None}))
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
"""


def _get(container: str, url: str) -> dict:
    p = images.podman("exec", container, "python", "-c", PROBE, url, timeout=150)
    return json.loads(p.stdout.strip().splitlines()[-1])


PORTS = {"dataset-service": 8101, "tracer": 8102}
SERVICES = {
    "dataset-service": ("http://127.0.0.1:8101/services/dataset-service", {
        "INSITU_DATABASE_URL": "sqlite:////tmp/ds.sqlite", "INSITU_LAKE_DIR": "/tmp/lake",
        "INSITU_DATASETS_DIR": "/tmp/datasets", "INSITU_AIRLOCK_STORE_DIR": "/tmp/airlock",
        "INSITU_AIRLOCK_HOMES_ROOT": "/tmp/homes", "INSITU_HUB_API_URL": "http://127.0.0.1:9/hub/api"},
        "/api/datasets"),
    "tracer": ("http://127.0.0.1:8102/services/tracer", {
        "TRACER_DATABASE_URL": "sqlite:////tmp/tracer.sqlite", "TRACER_CHAIN_URL": "http://127.0.0.1:9",
        "TRACER_HUB_API_URL": "http://127.0.0.1:9/hub/api", "TRACER_PRIVATE_KEY": "0x" + "11" * 32}, "/health"),
}


@pytest.mark.timeout(1800)  # a cold build installs ~150 packages
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_image_starts_and_answers(podman_ready, name):
    ref = images.build(name)
    base, env, protected = SERVICES[name]
    ctr = _run_detached(ref, env)
    try:
        doc = _get(ctr, base + "/openapi.json")
        assert doc["status"] == 200 and doc["body"]["info"]["version"], doc
        # an API route without a hub token: refused, by the service itself
        assert _get(ctr, base + protected)["status"] == 401
        # the probes the chart names (tests/kube/test_probes.py) answer without credentials
        for path in (LIVE_PATH, READY_PATH):
            assert _get(ctr, f"http://127.0.0.1:{PORTS[name]}{path}") == {"status": 200, "body": None}, path
        _assert_exactly_its_group(ctr, name)
    finally:
        logs = images.podman("logs", ctr, check=False)
        images.podman("rm", "-f", "-t", "0", ctr, check=False)
    assert "Traceback" not in logs.stdout + logs.stderr, logs.stderr[-3000:]


@pytest.mark.timeout(1800)
def test_hub_image_runs_the_chart_configuration(podman_ready):
    import yaml

    ref = images.build("hub")
    lock = (ROOT / "requirements.lock").read_text()
    want = re.search(r"^jupyterhub==(\S+)", lock, re.M).group(1)
    p = images.podman("run", "--rm", "--network", "none", ref, "jupyterhub", "--version")
    assert p.stdout.strip() == want
    values = yaml.safe_load((ROOT / "helm" / "insitu" / "values.yaml").read_text())["jupyterhub"]["hub"]
    env = []
    for k, v in values["extraEnv"].items():
        env += ["-e", f"{k}={'token-of-' + v['valueFrom']['secretKeyRef']['key'] if isinstance(v, dict) else v}"]
    code = "\n".join(values["extraConfig"].values())
    script = (
        "from traitlets.config import Config\nc = Config()\n" + code + "\n"
        "from hub.kube import InsituKubeSpawner\n"
        "print(c.JupyterHub.spawner_class, c.Spawner.dataset_service_token, c.Spawner.dataset_service_url)\n"
    )
    p = images.podman("run", "--rm", "--network", "none", *env, ref, "python", "-c", script)
    assert p.stdout.split() == ["hub.kube.InsituKubeSpawner", "token-of-insitu-hub",
                                "http://insitu-dataset-service:8101/services/dataset-service"]
    ctr = _run_detached(ref, {}, "sleep", "300")
    try:
        _assert_exactly_its_group(ctr, "hub")
    finally:
        images.podman("rm", "-f", "-t", "0", ctr, check=False)


def _assert_server_refuses_downloads(ref: str) -> None:
    """The image's notebook server, started as the spawner starts it, refuses the download paths."""
    token = secrets.token_hex(16)
    ctr = _run_detached(ref, {"HOME": "/tmp"}, "jupyter", "server", "--ServerApp.ip=127.0.0.1",
                        "--ServerApp.port=8888", f"--IdentityProvider.token={token}", "--ServerApp.root_dir=/tmp")
    try:
        images.podman("exec", ctr, "sh", "-c", "echo secret > /tmp/data.txt")
        ok = _get(ctr, f"http://127.0.0.1:8888/api/contents/data.txt?token={token}")
        assert ok["status"] == 200 and ok["body"]["name"] == "data.txt"
        for path in ("files/data.txt", "api/contents/data.txt?download=1", "nbconvert/html/data.txt"):
            sep = "&" if "?" in path else "?"
            assert _get(ctr, f"http://127.0.0.1:8888/{path}{sep}token={token}")["status"] == 403, path
    finally:
        images.podman("rm", "-f", "-t", "0", ctr, check=False)


@pytest.mark.timeout(1800)
def test_notebook_server_stage_refuses_downloads(podman_ready):
    """Default suite: the notebook image's `server` stage (the server, JupyterLab and the lock-down,
    without the several GB of the science stack) is built and started; the full image is this stage
    plus the stack (slow test below)."""
    ref = images.build("notebook", target="server")
    _assert_server_refuses_downloads(ref)


def requires_cuda_runtime(requires: list[str]) -> bool:
    """A torch wheel's requirements name the CUDA runtime: ``nvidia-cuda-runtime-cu12`` (CUDA 12
    builds) or ``cuda-toolkit[...,cudart,...]`` (CUDA 13 builds, torch 2.13 on PyPI)."""
    for r in requires:
        m = re.match(r"cuda-toolkit\[([^\]]*)\]", r)
        if r.startswith("nvidia-cuda-runtime") or (m and "cudart" in m.group(1).split(",")):
            return True
    return False


TORCH_PIN = re.search(r"^torch==(\S+)$", (ROOT / "images" / "notebook" / "requirements.txt").read_text(), re.M).group(1)


def test_pinned_torch_wheel_is_a_cuda_build():
    """Default suite, without building the notebook image: the torch wheel PyPI serves for the image's
    platform at the image's pin (cp311, manylinux x86_64: the image's Debian Python 3.11 takes the
    same wheel) requires the CUDA runtime. The set-up downloads that wheel once into its wheelhouse
    (scripts/lib/wheelhouse.sh); its metadata is read from the file. The slow test below checks the
    built image itself."""
    import zipfile

    wheelhouse = Path(os.environ.get("INSITU_CACHE") or "/var/cache/insitu") / "wheels"
    wheels = sorted(wheelhouse.glob(f"torch-{TORCH_PIN}-cp311-cp311-manylinux*_x86_64.whl"))
    if not wheels:
        pytest.skip(f"no torch {TORCH_PIN} wheel in {wheelhouse} (scripts/setup.sh puts it there)")
    with zipfile.ZipFile(wheels[0]) as z:
        meta = z.read(f"torch-{TORCH_PIN}.dist-info/METADATA").decode()
    requires = re.findall(r"^Requires-Dist: (\S+)", meta, re.M)
    assert requires_cuda_runtime(requires), requires
    assert not requires_cuda_runtime([r for r in requires if "cuda" not in r])  # the check bites


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_notebook_image_refuses_downloads_and_carries_cuda_torch(podman_ready):
    """Slow: the full image carries the CUDA torch and its nvidia-* wheels (several GB)."""
    ref = images.build("notebook")
    meta = images.podman("run", "--rm", "--network", "none", ref, "python", "-c",
                         "import importlib.metadata as m; print(m.version('torch')); "
                         "print('\\n'.join(m.requires('torch') or []))").stdout.splitlines()
    assert meta[0] == TORCH_PIN
    assert requires_cuda_runtime(meta[1:]), meta
    cuda = images.podman("run", "--rm", "--network", "none", ref, "python", "-c",
                         "import torch; print(torch.version.cuda)").stdout.strip()
    assert re.fullmatch(r"\d+\.\d+", cuda), cuda
    _assert_server_refuses_downloads(ref)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_desktop_image_builds_with_its_viewer_and_vnc(podman_ready):
    ref = images.build("desktop")
    tools = ["Xvnc", "vncpasswd", "aeskulap", "jupyterhub-singleuser", "insitu-desktop"]
    # one `command -v` per name: Debian's sh (dash) answers only for the first of several
    p = images.podman("run", "--rm", "--network", "none", ref, "sh", "-c",
                      'for t in "$@"; do command -v "$t" || echo "missing $t"; done', "sh", *tools)
    assert [line.rsplit("/", 1)[-1] for line in p.stdout.split("\n") if line] == tools, p.stdout
