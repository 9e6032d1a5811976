"""The images of images/, built with podman here and started.

Default suite: each Dockerfile starts from the local Debian base and installs its
component with that component's declared dependencies (no hand-picked pins, no
``--no-deps``); the service images (dataset service, tracer, hub) are built for
real and started with no network at all: the dataset service and the tracer
answer over HTTP inside their container (OpenAPI document with the version,
health refused without a hub token), the hub image imports InsituKubeSpawner and
turns the chart's environment into a configuration whose spawner carries the
insitu-hub token.

Marked ``slow`` (heavy: several GB of CUDA wheels, a desktop): the notebook and
desktop images. The notebook image's server refuses ``/files/`` (the lock-down
is loaded under the module name its configuration enables) and its torch is a
CUDA build (the installed wheel's metadata names CUDA libraries).
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest

from . import images
from .kubetools import ROOT

IMAGES = ["notebook", "desktop", "hub", "dataset-service", "tracer"]


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_builds_from_the_local_base_with_declared_dependencies(image):
    df = (ROOT / "images" / image / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=localhost/insitu-base:bookworm$", df, re.M) and re.search(r"^FROM \$\{BASE\}$", df, re.M)
    text = df.replace("\\\n", " ")
    installs = re.findall(r"pip install ([^&\n]*)", text)
    assert installs, "no package installed?"
    for args in installs:
        assert "--no-deps" not in args
        words = [w for w in args.split() if not w.startswith("-")]
        # what is installed: the project (/src, its pyproject dependencies) or a requirements file
        assert all(w.startswith("/") for w in words), f"{image}: hand-picked packages {words}"
        assert re.search(r"-c (/src|/tmp/build)/constraints.txt", args)
    # the constraints are the lock, less only what Debian's Python 3.11.2 cannot take
    assert re.findall(r"grep -v '\^(\S+)==' \S+/requirements.lock > \S+/constraints.txt", text) == ["soupsieve"]
    assert re.search(r"^USER (?!0\b|root\b)\d+", df, re.M), "images run as a non-root user"


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


PROBE = """
import json, sys, time, urllib.request, urllib.error
url = sys.argv[1]
deadline = time.monotonic() + 90
while True:
    try:
        r = urllib.request.urlopen(url, timeout=5)
        print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
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
        # the image's Python has the component's declared dependencies, not a hand-picked few
        p = images.podman("exec", ctr, "python", "-c",
                          "import importlib.metadata as m, json; print(json.dumps(m.requires('insitu')))")
        declared = json.loads(p.stdout)
        assert len(declared) > 20
        missing = images.podman("exec", ctr, "python", "-c",
                                 "import sys, importlib.metadata as m\n"
                                 "bad=[]\n"
                                 "for r in sys.argv[1:]:\n"
                                 "    try: m.version(r)\n"
                                 "    except m.PackageNotFoundError: bad.append(r)\n"
                                 "print(bad)", *[re.split(r"[<>=\[;]", d)[0] for d in declared if "extra ==" not in d])
        assert missing.stdout.strip() == "[]"
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


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_notebook_image_refuses_downloads_and_carries_cuda_torch(podman_ready):
    ref = images.build("notebook")
    meta = images.podman("run", "--rm", "--network", "none", ref, "python", "-c",
                         "import importlib.metadata as m; print(m.version('torch')); "
                         "print('\\n'.join(m.requires('torch') or []))").stdout.splitlines()
    assert meta[0] == "2.13.0"
    assert any(r.startswith("nvidia-cuda-runtime") for r in meta[1:]), meta
    cuda = images.podman("run", "--rm", "--network", "none", ref, "python", "-c",
                         "import torch; print(torch.version.cuda)").stdout.strip()
    assert re.fullmatch(r"\d+\.\d+", cuda), cuda
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


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_desktop_image_builds_with_its_viewer_and_vnc(podman_ready):
    ref = images.build("desktop")
    p = images.podman("run", "--rm", "--network", "none", ref, "sh", "-c",
                      "command -v Xvnc vncpasswd aeskulap jupyterhub-singleuser insitu-desktop")
    assert len(p.stdout.split()) == 5
