"""Every repository path that the docs name exists: README.md, docs/*.md, and the docstrings and comments
of the project's Python (tests aside). A path is a word that starts with a top-level folder of the
repository (``hub/plan.py``, ``helm/insitu/files/realm.json``); a pattern (``<var>/lake``,
``tests/hub/golden/sandbox_*.json``) is checked up to its first placeholder. URL paths written after a
placeholder (``{base}insitu/notice``) are not repository paths and are skipped."""
from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"[{}<>*]")


def path_pattern(top: set[str]) -> re.Pattern:
    return re.compile(r"(?<![\w./}>-])((?:%s)/[\w./{}<>*-]*[\w*}>/])" % "|".join(map(re.escape, sorted(top))))


def python_prose(source: str) -> str:
    """The docstrings and comments of a module."""
    out = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                out.append(doc)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out.append(tok.string)
    return "\n".join(out)


def names_something(repo: Path, path: str) -> bool:
    """``path`` exists; a pattern matches a file, or its folder before the first placeholder exists; a
    dotted name (``tests/fuzz/fuzz_support.fuzz``) is an attribute of an existing module."""
    if PLACEHOLDER.search(path):
        if any(repo.glob(re.sub(r"\{[^}]*\}|<[^>]*>", "*", path))):
            return True
        folder = PLACEHOLDER.split(path)[0].rsplit("/", 1)[0]
        return (repo / folder).is_dir()
    if (repo / path).exists():
        return True
    module, _, attr = path.rpartition(".")
    return bool(attr) and attr.isidentifier() and (repo / f"{module}.py").is_file()


def missing_paths(repo: Path) -> list[tuple[str, str]]:
    top = {p.name for p in repo.iterdir() if not p.name.startswith(".")}
    rx = path_pattern(top)
    tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    texts = [(f, (repo / f).read_text()) for f in ["README.md", *sorted(str(p.relative_to(repo))
                                                                       for p in (repo / "docs").glob("*.md"))]]
    texts += [(f, python_prose((repo / f).read_text())) for f in tracked
              if f.endswith(".py") and not f.startswith("tests/") and (repo / f).is_file()]
    bad = set()
    for name, text in texts:
        for m in rx.finditer(text):
            path = m.group(1).rstrip(".")
            if not names_something(repo, path):
                bad.add((name, path))
    return sorted(bad)


def test_every_path_the_docs_name_exists():
    assert missing_paths(REPO) == []


def test_the_checker_finds_a_missing_path(tmp_path):
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "plan.py").write_text('"""Built by ``hub/plan.py`` and ``hub/nowhere.py``; served at\n'
                                             '``{base}hub/api`` (a URL)."""\n# see hub/gone/\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("`hub/plan.py`, `hub/plan.build`, `hub/<user>/home`, `hub/pl*.py`, "
                                        "`hub/other/<user>` and `hub/missing.md`\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    assert missing_paths(tmp_path) == [("README.md", "hub/missing.md"), ("README.md", "hub/other/<user>"),
                                       ("hub/plan.py", "hub/gone/"),
                                       ("hub/plan.py", "hub/nowhere.py")]
