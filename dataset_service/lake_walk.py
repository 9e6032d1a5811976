"""Reading the lake for the indexer, without following a link: the walk of
``<lake>/<subject>/<study>/<series>/<instance>`` (``scan``) with every entry off the layout
recorded with its reason (``IndexStats.skipped``), the subjects' eForms (``read_eform``), and the
lake's folder permissions (``fix_lake_permissions``: traverse-only above the studies, studies closed
to others). ``indexer.py`` hashes, parses and synchronises the catalogue from what it finds.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import safe_name


@dataclass
class IndexStats:
    files_seen: int = 0
    files_hashed: int = 0
    files_cached: int = 0
    bytes_hashed: int = 0
    subjects: int = 0
    studies: int = 0
    series: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    skipped: list[dict] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def skip(stats: IndexStats, path: str, reason: str) -> None:
    stats.skipped.append({"path": path, "reason": reason})


def link_reason(lake_real: str, full: str) -> str:
    target = os.path.realpath(full)
    if target != lake_real and not target.startswith(lake_real + os.sep):
        return "symbolic link pointing out of the lake"
    return "symbolic link (links inside the lake are not followed)"


def scan(lake: Path, stats: IndexStats):
    """Yield (relpath, size, mtime_ns, inode) of every instance file in layout; fill skips."""
    lake_real = os.path.realpath(lake)
    subjects: list[str] = []
    studies: list[str] = []
    files: list[tuple[str, int, int, int]] = []

    def entries(rel: str):
        full = os.path.join(lake_real, rel) if rel else lake_real
        try:
            with os.scandir(full) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as e:
            skip(stats, rel or ".", f"unreadable folder: {e.strerror}")
            return []

    def classify(e, rel: str, want_dir: bool) -> bool:
        if e.is_symlink():
            skip(stats, rel, link_reason(lake_real, e.path))
            return False
        if not safe_name(e.name):
            skip(stats, rel, "name is not a plain name (letters, digits, . _ -)")
            return False
        is_dir = e.is_dir(follow_symlinks=False)
        if want_dir and not is_dir:
            skip(stats, rel, "a file where the layout expects a folder")
            return False
        if not want_dir and not e.is_file(follow_symlinks=False):
            skip(stats, rel, "not a regular file")
            return False
        return True

    for s in entries(""):
        if s.name == "eform.json" or s.name.startswith("."):
            continue
        if not classify(s, s.name, True):
            continue
        subjects.append(s.name)
        for st in entries(s.name):
            rel_st = f"{s.name}/{st.name}"
            if st.name == "eform.json" and st.is_file(follow_symlinks=False):
                continue
            if not classify(st, rel_st, True):
                continue
            studies.append(rel_st)
            for se in entries(rel_st):
                rel_se = f"{rel_st}/{se.name}"
                if not classify(se, rel_se, True):
                    continue
                for f in entries(rel_se):
                    rel_f = f"{rel_se}/{f.name}"
                    if not classify(f, rel_f, False):
                        continue
                    try:
                        sr = f.stat(follow_symlinks=False)
                    except OSError as e:
                        skip(stats, rel_f, f"cannot stat: {e.strerror}")
                        continue
                    files.append((rel_f, sr.st_size, sr.st_mtime_ns, sr.st_ino))
    return subjects, studies, files


def fix_lake_permissions(lake: Path, subjects: list[str], studies: list[str], stats: IndexStats) -> None:
    lake_real = os.path.realpath(lake)
    denied = 0

    def apply(rel: str, clear: int, add: int):
        nonlocal denied
        p = os.path.join(lake_real, rel) if rel else lake_real
        try:
            mode = stat.S_IMODE(os.lstat(p).st_mode)
            new = (mode & ~clear) | add
            if new != mode:
                os.chmod(p, new)
        except PermissionError:
            denied += 1
        except OSError:
            pass

    apply("", stat.S_IROTH | stat.S_IWOTH, stat.S_IXOTH)
    for s in subjects:
        apply(s, stat.S_IROTH | stat.S_IWOTH, stat.S_IXOTH)
    for st in studies:
        apply(st, stat.S_IRWXO, 0)
    if denied:
        stats.permissions.append(
            f"could not restrict {denied} lake folder(s): the service is not allowed to chmod them "
            "(the lake owner must make folders above the studies traverse-only and studies closed to others)")
    else:
        stats.permissions.append(
            f"lake root and {len(subjects)} subject folder(s) traverse-only for others; "
            f"{len(studies)} study folder(s) closed to others")


def read_eform(lake: str, subject: str, stats: IndexStats) -> dict | None:
    p = os.path.join(lake, subject, "eform.json")
    if os.path.islink(p):
        skip(stats, f"{subject}/eform.json", link_reason(lake, p))
        return None
    try:
        with open(p, "rb") as fh:
            raw = fh.read(1_000_001)
    except FileNotFoundError:
        return None
    except OSError as e:
        skip(stats, f"{subject}/eform.json", f"unreadable: {e.strerror}")
        return None
    try:
        if len(raw) > 1_000_000:
            raise ValueError("larger than 1 MB")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except ValueError as e:
        skip(stats, f"{subject}/eform.json", f"invalid eForm: {e}")
        return None
