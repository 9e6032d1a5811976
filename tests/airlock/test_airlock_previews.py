"""The reviewer's notebook preview (dataset_service/airlock/previews.py): cells read, other shapes refused,
also under ``python -O`` (the shape check is an explicit test, not an ``assert``)."""
from __future__ import annotations

import json
import subprocess
import sys

from dataset_service.airlock.previews import notebook_preview


def test_notebook_cells_and_outputs():
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1\n", "x"], "outputs": [{"text": ["1"]}]},
                    {"cell_type": "markdown", "source": "# title"}]}
    out = notebook_preview(json.dumps(nb).encode())
    assert out["n_cells"] == 2
    assert out["cells"][0] == {"type": "code", "source": "x = 1\nx", "outputs": [{"kind": "text", "text": "1"}]}
    assert out["cells"][1]["source"] == "# title"


def test_not_a_notebook_has_no_preview():
    for bad in (b"not json", b"[]", b'{"nbformat": 4}', b'{"cells": {"a": 1}}', b'{"cells": "text"}'):
        assert notebook_preview(bad) is None, bad


def test_shape_check_survives_optimised_python():
    code = ("from dataset_service.airlock.previews import notebook_preview as p; "
            "print(p(b'{\"cells\": {\"a\": 1}}'))")
    r = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "None"
