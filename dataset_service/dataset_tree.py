"""The dataset tree on disk, as the builder makes it (``builder.py`` says the steps): where it is built
and where it lands (``tmp_path``, ``final_path``), the build lock, each study's ACL entries given and its
files checked against the catalogue in one walk (``grant_and_check``), the tree sealed read-only
(``seal``), a failed build's ACL entries taken back (``revoke``), removal of a half-built tree.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import stat
from pathlib import Path

from . import acl
from .paths import UnsafePath, resolve_study
from .settings import Settings


class BuildError(Exception):
    pass


def lock(settings: Settings, dataset_id: str):
    d = Path(settings.datasets_dir) / ".locks"
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / f"{dataset_id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def rmtree(path: Path) -> None:
    if not os.path.lexists(path):
        return
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
    os.chmod(path, 0o700)
    shutil.rmtree(path)


def tmp_path(settings: Settings, dataset_id: str) -> Path:
    return Path(settings.datasets_dir) / f".building-{dataset_id}"


def final_path(settings: Settings, dataset_id: str) -> Path:
    return Path(settings.datasets_dir) / dataset_id


def grant_and_check(study_dir: str, gid: int, expected: dict[str, tuple[int, int, int]], apply_acls: bool,
                     study_id: str, skip_reasons: dict[str, str]) -> list[dict]:
    """Walk the study once: ACL entries on every folder and catalogued file, each file against the catalogue.

    A file the catalogue does not hold (the indexer skipped it, or it came after indexing) is left
    out: it gets no ACL entry and, when ACLs are applied, is closed to others, so the dataset's
    group cannot open it through the study link. Returns those files with the reason.
    """
    seen = 0
    left_out: list[dict] = []
    stack = [(study_dir, "", None)]
    while stack:
        d, rel, dst = stack.pop()
        if apply_acls:
            acl.grant_group(d, gid, 5, dst)
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}{e.name}"
                st = e.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise BuildError(f"study {study_id} contains a symbolic link {r}: refused (re-index the lake)")
                if stat.S_ISDIR(st.st_mode):
                    stack.append((e.path, r + "/", st))
                    continue
                exp = expected.get(r)
                if exp is None:
                    path = f"{study_id}/{r}"
                    reason = skip_reasons.get(path, "not in the catalogue (added after the last indexing)")
                    if apply_acls and st.st_mode & 0o007:
                        try:
                            os.chmod(e.path, stat.S_IMODE(st.st_mode) & ~0o007)
                        except OSError as err:
                            raise BuildError(f"file {path} is left out ({reason}) but stays readable by others "
                                             f"and cannot be closed: {err.strerror}") from None
                    left_out.append({"path": path, "reason": reason})
                    continue
                if (st.st_size, st.st_mtime_ns, st.st_ino) != exp:
                    raise BuildError(f"file {study_id}/{r} changed since indexing: re-index the lake")
                if apply_acls:
                    acl.grant_group(e.path, gid, 4, st)
                seen += 1
    if seen != len(expected):
        raise BuildError(f"study {study_id}: {len(expected) - seen} catalogued file(s) missing: re-index the lake")
    return left_out


def seal(root: Path, subjects: list[str], files: list[str], gid: int, apply_acls: bool) -> None:
    """Folders 0500 and files 0400 for the owner; ``group:<gid>`` may read (ACL), others nothing.

    The tree was made by this build: its folders are ``root`` and the subject
    folders, its files ``files``; the study entries are symbolic links (no mode).
    """
    dirs = [str(root / x) for x in subjects] + [str(root)]
    for f in files:
        if apply_acls:
            acl.set_exact(root / f, 4, gid, 4)
        else:
            os.chmod(root / f, 0o400)
    for d in dirs:  # the root last
        if apply_acls:
            acl.set_exact(d, 5, gid, 5)
        else:
            os.chmod(d, 0o500)


def revoke(settings: Settings, study_ids: list[str], gid: int) -> None:
    if not settings.apply_acls:
        return
    for sid in study_ids:
        try:
            d = resolve_study(Path(settings.lake_dir), sid)
        except UnsafePath:
            continue
        for cur, dirs, files in os.walk(d):
            for p in [cur] + [os.path.join(cur, f) for f in files]:
                try:
                    if not os.path.islink(p):
                        acl.revoke_group(p, gid)
                except OSError:
                    pass


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
