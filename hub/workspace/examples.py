"""The platform's example notebooks in the researcher's home.

Runs inside the workspace, as the researcher (from the server extension's
load), so nothing acts on the home with more rights than its owner. The
originals are bound read-only at ``$INSITU_EXAMPLES`` (``/opt/insitu/examples``);
at the first start of a home they are copied into ``~/examples/`` (writable,
the researcher's own) with a link ``~/examples/originals`` to the read-only
originals. A marker (``~/.insitu/examples-copied``) keeps a researcher's
deletions and edits: the copy happens once per home.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MARKER = ".insitu/examples-copied"


def install_examples(home: str | os.PathLike, originals: str | os.PathLike | None) -> list[str]:
    """Copy the example notebooks into ``home/examples`` once; returns the names copied."""
    if not originals:
        return []
    home, originals = Path(home), Path(originals)
    marker = home / MARKER
    if marker.exists() or not originals.is_dir():
        return []
    dest = home / "examples"
    dest.mkdir(exist_ok=True)
    copied = []
    for src in sorted(originals.iterdir()):
        if src.suffix != ".ipynb" or not src.is_file():
            continue
        target = dest / src.name
        if not target.exists():
            shutil.copyfile(src, target)  # the copy is the researcher's: writable
            copied.append(src.name)
    link = dest / "originals"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(originals)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(",".join(copied) + "\n")
    return copied
