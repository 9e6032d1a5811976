"""The Dockerfiles under images/ pin what they install, and the pins agree
with requirements.lock. (No image is built here: no registry is reachable.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ["notebook", "desktop", "hub", "dataset-service", "tracer"]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line.strip())
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def _pip_args(dockerfile: str) -> list[str]:
    text = dockerfile.replace("\\\n", " ")
    args = []
    for m in re.finditer(r"pip install ([^&\n]*)", text):
        args += m.group(1).split()
    return args


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_pins_agree_with_the_lock(image):
    df = (ROOT / "images" / image / "Dockerfile").read_text()
    lock = _lock()
    base = re.search(r"^FROM (\S+)", df, re.M).group(1)
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", base), f"unpinned base image {base}"
    pkgs = [a for a in _pip_args(df) if not a.startswith("-") and not a.startswith("/") and not a.startswith("http")]
    assert pkgs, "no package installed?"
    for p in pkgs:
        assert "==" in p, f"{image}: {p} is not pinned"
        name, version = p.split("==")
        assert lock.get(_norm(name)) == version, f"{image}: {name}=={version} but requirements.lock has {lock.get(_norm(name))}"
    assert re.search(r"^USER (?!0\b|root\b)\d+", df, re.M), "images run as a non-root user"


def test_workspace_images_are_the_ones_the_policies_allow():
    from hub.kube import KubeOptions
    from hub.preflight import PreflightConfig, wildcard_match

    for ref in (KubeOptions().notebook_image, KubeOptions().desktop_image):
        assert any(wildcard_match(p, ref) for p in PreflightConfig().allowed_images)


def test_a_drifted_pin_is_detected(tmp_path):
    """The check is not a rubber stamp: a pin that differs from the lock fails."""
    df = (ROOT / "images" / "notebook" / "Dockerfile").read_text().replace("monai==1.6.1", "monai==1.5.0")
    lock = _lock()
    bad = [p for p in _pip_args(df) if "==" in p and lock.get(_norm(p.split("==")[0])) != p.split("==")[1]]
    assert bad == ["monai==1.5.0"]
