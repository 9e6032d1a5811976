"""Shared pytest set-up. Fixture plugins live in tests/fixtures/.

Nothing the tests run writes into the checkout: compiled files of the processes
they start, hypothesis's example database and screenshots go to caches and
temporary folders outside it (``make test`` sets the same)."""

import os
import sys
from pathlib import Path

_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "insitu"
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(_CACHE / "pycache"))
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(_CACHE / "hypothesis"))
if sys.pycache_prefix is None:
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]

pytest_plugins = ["fixtures.postgres", "fixtures.jupyterhub", "fixtures.governance_stack", "fixtures.keycloak"]
