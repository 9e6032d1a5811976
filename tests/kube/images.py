"""Build and run the images of images/ with podman, on this machine.

No image registry is reachable: every image starts FROM localhost/insitu-base:bookworm,
a debootstrap'd Debian root file system imported by scripts/setup.d/35-image-base.sh
into the project's own podman store (``$INSITU_CACHE/podman``, outside the source
tree). A build gets a context with only what the Dockerfiles copy, the host's CA
bundle mounted for its RUN steps (TLS to the package registries; never baked into an
image) and pip's download cache mounted (``$INSITU_PIP_CACHE``, as the workspace
environment uses), so a rebuild with unchanged inputs reuses podman's layer cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .kubetools import CACHE, ROOT

PODDIR = CACHE / "podman"
BASE = "localhost/insitu-base:bookworm"
REGISTRY = "registry.insitu.local/insitu"
TAG = "0.1.0"
PIP_CACHE = Path(os.environ.get("INSITU_PIP_CACHE") or "/var/cache/insitu/pip")
CONTEXT = ["requirements.lock", "pyproject.toml", "README.md", "insitu", "hub", "dataset_service", "tracer", "images"]


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "building images with podman needs root here"
    for t in ("podman", "runc"):
        if not shutil.which(t):
            return f"{t} is not installed (scripts/apt-packages.txt)"
    if podman("image", "exists", BASE, check=False).returncode != 0:
        return f"{BASE} is missing: run scripts/setup.sh (scripts/setup.d/35-image-base.sh)"
    return None


def podman(*args: str, check: bool = True, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(PODDIR / "containers.conf"))
    cmd = ["podman", "--root", str(PODDIR / "store"), "--runroot", str(PODDIR / "run"), "--storage-driver", "overlay",
           *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}…: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def image_ref(name: str, target: str | None = None) -> str:
    return f"{REGISTRY}/{name}{'-' + target if target else ''}:{TAG}"


def build(name: str, timeout: float = 3000, target: str | None = None) -> str:
    """Build images/<name>/Dockerfile (up to the stage ``target`` if given); returns the image reference."""
    ctx = Path(tempfile.mkdtemp(prefix="insitu-ctx-"))
    try:
        for part in CONTEXT:
            src = ROOT / part
            if src.is_dir():
                shutil.copytree(src, ctx / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, ctx / part)
        PIP_CACHE.mkdir(parents=True, exist_ok=True)
        podman("build", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--layers",
               "-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
               "-v", f"{PIP_CACHE}:/root/.cache/pip",
               *(["--target", target] if target else []),
               "-f", str(ctx / "images" / name / "Dockerfile"), "-t", image_ref(name, target), str(ctx), timeout=timeout)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return image_ref(name, target)
