"""Compiled Python files never land next to the code, whoever runs it.

The set-up (scripts/lib/pycache.sh) puts a .pth file in each environment: the
development environment compiles into ``$XDG_CACHE_HOME/insitu/pycache`` even
when nothing sets ``PYTHONPYCACHEPREFIX`` (a benchmark run by hand, a service
the hub starts with a clean environment); the workspace environment writes no
compiled files at all. Run here with an environment stripped of both variables.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(python: Path, code_dir: Path, cache: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")}
    env["XDG_CACHE_HOME"] = str(cache)
    subprocess.run([str(python), "-c", "import probe_module"], cwd=code_dir, env=env, check=True, timeout=60)


@pytest.fixture
def code_dir(tmp_path):
    d = tmp_path / "code"
    d.mkdir()
    (d / "probe_module.py").write_text("VALUE = 1\n")
    return d


def test_the_development_environment_compiles_into_the_cache(code_dir, tmp_path):
    cache = tmp_path / "cache"
    _run(REPO / ".venv" / "bin" / "python", code_dir, cache)
    assert not (code_dir / "__pycache__").exists()
    assert list((cache / "insitu" / "pycache").rglob("probe_module*.pyc"))


def test_the_workspace_environment_writes_no_compiled_files(code_dir, tmp_path):
    python = REPO / ".venv-workspace" / "bin" / "python"
    cache = tmp_path / "cache"
    _run(python, code_dir, cache)
    assert not (code_dir / "__pycache__").exists()
    assert not cache.exists() or not list(cache.rglob("*.pyc"))
