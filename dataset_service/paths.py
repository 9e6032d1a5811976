"""Path safety for study references and lake entries.

A study id is ``<subject>/<study>``: exactly two components, each a plain name
(``NAME_RE``): no ``..``, no absolute path, no separators, no control
characters. ``resolve_study`` also checks that the folder really lies inside
the lake after resolving symlinks, and that it is a real directory (not a link).
Every refusal raises ``UnsafePath`` with the reason; the API turns it into 4xx.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class UnsafePath(ValueError):
    pass


def safe_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and name not in (".", "..")


def check_study_id(study_id: str) -> tuple[str, str]:
    if not isinstance(study_id, str) or not study_id:
        raise UnsafePath("empty study id")
    if len(study_id) > 300:
        raise UnsafePath("study id too long")
    if study_id.startswith("/"):
        raise UnsafePath(f"absolute path not allowed: {study_id!r}")
    parts = study_id.split("/")
    if any(p in ("..", ".") for p in parts):
        raise UnsafePath(f"path traversal not allowed: {study_id!r}")
    if len(parts) != 2:
        raise UnsafePath(f"a study id is '<subject>/<study>': {study_id!r}")
    for p in parts:
        if not safe_name(p):
            raise UnsafePath(f"invalid name {p!r} in study id {study_id!r}")
    return parts[0], parts[1]


def resolve_study(lake: Path, study_id: str) -> Path:
    """The study folder inside ``lake``; raises ``UnsafePath`` if it would leave the lake."""
    subject, study = check_study_id(study_id)
    lake_real = Path(os.path.realpath(lake))
    candidate = lake_real / subject / study
    real = Path(os.path.realpath(candidate))
    if real != candidate or lake_real not in real.parents:
        raise UnsafePath(f"study {study_id!r} resolves outside the lake (symbolic link)")
    try:
        st = os.lstat(candidate)
    except FileNotFoundError:
        raise UnsafePath(f"study {study_id!r} does not exist in the lake") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"study {study_id!r} is not a folder")
    return candidate
