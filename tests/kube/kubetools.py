"""The Kubernetes tools the tests run for real, and the chart rendered by helm.

The binaries live outside the source tree, in ``${INSITU_CACHE:-~/.cache/insitu}/bin``,
put there by ``scripts/setup.d/30-kube-tools.sh`` (helm and kubectl from an npm
package, the kyverno CLI built from its Go module). A missing tool fails the
test that needs it: the set-up installs every one of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "insitu"
STUBS = Path(__file__).resolve().parent / "stubs"
CACHE = Path(os.environ.get("INSITU_CACHE") or Path.home() / ".cache" / "insitu")


def tool(name: str) -> str:
    path = CACHE / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run scripts/setup.sh (scripts/setup.d/30-kube-tools.sh)")
    return str(path)


def run(args: list[str], *, home: Path | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a tool; ``home`` keeps helm's cache and config in a temporary folder."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    if home is not None:
        kw["env"] = helm_env(home)
    return subprocess.run(args, **kw)


def stubbed_chart(dest: Path) -> Path:
    """A copy of helm/insitu whose two dependencies are stubs: the z2jh chart
    as its own values.yaml and values.schema.json at 4.2.0 (no templates: helm
    validates what the chart hands it against z2jh's schema), and the Bitnami
    Keycloak chart as the keys of its documented parameters we use (a schema that
    refuses every other key). Neither chart is in a registry reachable here."""
    chart = dest / "insitu"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts", "*.tgz", "__pycache__"))
    deps = {d["name"]: d for d in yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]}
    for name, d in deps.items():
        sub = chart / "charts" / name
        shutil.copytree(STUBS / name, sub)
        (sub / "Chart.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v2", "name": name, "version": d["version"], "type": "application",
            "description": f"stand-in for the {name} chart {d['version']} (values and schema only)"}))
    return chart


def helm_env(home: Path) -> dict[str, str]:
    return dict(os.environ, HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                HELM_DATA_HOME=str(home / "data"))
