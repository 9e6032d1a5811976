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


def resolve_study(lake: Path, study_id: str, lake_real: str | None = None) -> Path:
    """The study folder inside ``lake``; raises ``UnsafePath`` if it would leave the lake.

    Both components are plain names (no ``..``), so the folder stays inside the
    lake unless the subject or the study folder is a symbolic link: each is
    checked with ``lstat`` (cheaper than ``realpath`` for thousands of studies).
    """
    subject, study = check_study_id(study_id)
    lake_real = lake_real or os.path.realpath(lake)
    subject_dir = os.path.join(lake_real, subject)
    candidate = os.path.join(subject_dir, study)
    try:
        if stat.S_ISLNK(os.lstat(subject_dir).st_mode):
            raise UnsafePath(f"study {study_id!r} resolves outside the lake (symbolic link {subject!r})")
        st = os.lstat(candidate)
    except FileNotFoundError:
        raise UnsafePath(f"study {study_id!r} does not exist in the lake") from None
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(candidate)
        where = "outside the lake" if not target.startswith(lake_real + os.sep) else "elsewhere in the lake"
        raise UnsafePath(f"study {study_id!r} resolves {where} (symbolic link): refused")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"study {study_id!r} is not a folder")
    return Path(candidate)
