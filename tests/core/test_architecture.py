"""The architecture's seams, checked statically over the source (Python's ast; nothing is imported).

- No import cycle between modules, counting every import wherever it is written (a late import inside a
  function still ties two modules together), nor between the top-level packages.
- The core (``insitu``) imports none of ``hub``, ``dataset_service``, ``tracer``.
- The services never import the hub; the dataset service and the tracer never import each other.
- The hub imports the dataset service only through its client (``dataset_service.client``) and nothing
  of the tracer.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("insitu", "hub", "dataset_service", "tracer")

# (importing package, imported package) -> the modules of the imported package it may use
ALLOWED_CROSS = {
    ("hub", "dataset_service"): {"dataset_service.client"},
}
FORBIDDEN_PACKAGES = {
    "insitu": {"hub", "dataset_service", "tracer"},
    "dataset_service": {"hub", "tracer"},
    "tracer": {"hub", "dataset_service"},
    "hub": {"tracer"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            if "migrations" in path.parts:  # alembic scripts: loaded by alembic, import only the models
                continue
            mods[module_name(path)] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (resolved to the longest known module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def add(target: str) -> None:
        parts = target.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in known:
                out.add(candidate)
                return
            parts.pop()

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:  # "from pkg import module" names a module
                if f"{mod}.{alias.name}" in known:
                    out.add(f"{mod}.{alias.name}")
                else:
                    add(mod)
    out.discard(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_cycles(graph):
    assert cycles(graph) == []


def test_no_package_cycles(graph):
    pkg_graph: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        src = mod.split(".")[0]
        pkg_graph.setdefault(src, set()).update(d.split(".")[0] for d in deps if d.split(".")[0] != src)
    assert cycles(pkg_graph) == []


def test_no_forbidden_cross_boundary_imports(graph):
    bad = []
    for mod, deps in sorted(graph.items()):
        src = mod.split(".")[0]
        for dep in sorted(deps):
            dst = dep.split(".")[0]
            if dst == src:
                continue
            if dst in FORBIDDEN_PACKAGES.get(src, ()):
                bad.append(f"{mod} -> {dep}")
            elif (src, dst) in ALLOWED_CROSS and dep not in ALLOWED_CROSS[(src, dst)]:
                bad.append(f"{mod} -> {dep} (only {sorted(ALLOWED_CROSS[(src, dst)])})")
    assert bad == []


def test_the_checker_sees_late_and_relative_imports(tmp_path):
    known = {"p", "p.a", "p.b", "p.sub", "p.sub.c"}
    f = tmp_path / "c.py"
    f.write_text("from .. import a\nfrom ..b import x\n\ndef f():\n    import p.sub\n")
    assert imports_of("p.sub.c", f, known) == {"p.a", "p.b", "p.sub"}


# What runs inside a workspace (hub/workspace, loaded there as insitu_workspace): itself, and of the core only
# the rules bound beside it (hub/sandbox_workspace.py: core_binds), which must need nothing but the standard
# library: a workspace environment has none of the platform's dependencies.
WORKSPACE = "hub.workspace"
WORKSPACE_CORE = {"insitu", "insitu.manifest", "insitu.merkle"}


def test_the_workspace_library_imports_only_itself_and_the_cores_rules(graph):
    bad = [f"{mod} -> {dep}" for mod, deps in sorted(graph.items())
           if mod == WORKSPACE or mod.startswith(WORKSPACE + ".")
           for dep in sorted(deps)
           if not (dep == WORKSPACE or dep.startswith(WORKSPACE + ".") or dep in WORKSPACE_CORE)]
    assert bad == []


def test_the_core_rules_a_workspace_carries_need_only_the_standard_library():
    import sys

    bad = []
    for name in sorted(WORKSPACE_CORE):
        path = REPO / (name.replace(".", "/") + ("/__init__.py" if name == "insitu" else ".py"))
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for m in mods:
                top = m.split(".")[0]
                if m not in WORKSPACE_CORE and top not in sys.stdlib_module_names and top != "__future__":
                    bad.append(f"{name} -> {m}")
    assert bad == []
