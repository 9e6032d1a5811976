"""Each component installs with its own dependencies: every third-party module a component imports
(anywhere in its source, late imports included; read with ast, nothing imported) must come from the
distributions its optional-dependency group in pyproject.toml declares, or from their own dependencies.

A static check rather than one virtual environment per component: it runs in a second, needs no network,
and fails on the same mistakes (a component importing what its group does not install). The workspace
library's group is checked against the packages of ``.venv-workspace`` when they are installed here too.
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
OWN = {"insitu", "hub", "dataset_service", "tracer"}
# component -> (its group, its source folders, folders left out, own names it may import)
COMPONENTS = {
    "core": ("core", ["insitu"], [], {"insitu"}),
    "dataset-service": ("dataset-service", ["dataset_service"], [], {"insitu", "dataset_service"}),
    "tracer": ("tracer", ["tracer"], [], {"insitu", "tracer"}),
    "hub": ("hub", ["hub"], ["hub/workspace"], {"insitu", "hub", "dataset_service"}),
    "workspace": ("workspace-desktop", ["hub/workspace"], [], {"insitu_workspace", "hub", "insitu"}),
}


def groups() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> set[str]:
    """Distribution names the requirements install (the installed metadata's own requirements, recursively)."""
    todo = [(Requirement(r), ()) for r in requirements]
    seen: set[str] = set()
    env = default_environment()
    while todo:
        req, _ = todo.pop()
        if req.name == "insitu":  # a group of this project: its requirements
            todo += [(Requirement(r), ()) for extra in req.extras for r in groups()[extra]]
            continue
        key = norm(req.name)
        extras = tuple(sorted(req.extras))
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        for r in dist.requires or []:
            sub = Requirement(r)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in ("",) + extras):
                todo.append((sub, ()))
    return {k for k, _ in seen}


def imports(folders: list[str], left_out: list[str]) -> dict[str, str]:
    """top-level module -> one file that imports it."""
    out: dict[str, str] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if any(rel.startswith(x + "/") for x in left_out):
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for n in names:
                    out.setdefault(n.split(".")[0], rel)
    return out


def workspace_stack() -> list[str]:
    """The imaging stack every workspace carries besides its group (torch, MONAI, pydicom …): the requirements
    both workspace images install, the same list as the embedded workspace environment's."""
    out = []
    for name in ("requirements-server.txt", "requirements.txt"):
        for line in (REPO / "images" / "notebook" / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                out.append(line)
    return out


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_component_imports_are_declared(component):
    group, folders, left_out, own = COMPONENTS[component]
    declared = closure(groups()[group] + (workspace_stack() if component == "workspace" else []))
    providers = md.packages_distributions()
    missing = []
    for module, where in sorted(imports(folders, left_out).items()):
        if module in sys.stdlib_module_names or module == "__future__" or module in own:
            continue
        if module in OWN:
            missing.append(f"{where}: imports the component {module}")
            continue
        dists = providers.get(module)
        if not dists:
            if component == "workspace":  # lives in .venv-workspace, not in the development environment
                continue
            missing.append(f"{where}: {module} (no installed distribution provides it)")
        elif not any(norm(d) in declared for d in dists):
            missing.append(f"{where}: {module} (from {', '.join(dists)}) is not in the group {group!r}")
    assert missing == []


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    pkg = tmp_path / "comp"
    pkg.mkdir()
    (pkg / "m.py").write_text("def f():\n    import yaml\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    found = imports(["comp"], [])
    assert found == {"yaml": "comp/m.py"}
    assert "pyyaml" not in closure(["fastapi"]) and "pyyaml" in closure(["pyyaml"])
