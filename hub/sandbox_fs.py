"""The folders root prepares for a local workspace, by descriptor (``hub/fsops.py`` rules).

Homes, one per user and project (issue 11, item 6)::

    <home_root>/                 root, 0711 (created if missing)
      <user>/                    root, 0711: the researcher cannot rename or replace what is in it
        <project>/               the researcher's uid, 0700: the only home a workspace of that project sees

Runtime folder of one workspace::

    <runtime_root>/              root, 0711
      <uid>-<random>/            root, 0711
        etc/                     root, 0755: passwd, group, hosts (0644), bound read-only
        run/                     the researcher's uid, 0700: bound at /run/insitu (the server's socket)
        hub/                     root, 0755: hub.sock (the researcher's uid, 0600), bound read-only
                                 at /run/insitu-hub; re-created by root after a hub restart

Root never acts by path inside ``run/`` or a home: everything here is done
relative to descriptors of root-owned folders, with ``O_NOFOLLOW``.

Migration of the former single home ``<home_root>/<user>`` (owned by the
researcher): on the first start after the upgrade it becomes the home of the
project that starts (renamed, never copied, in the root-owned folders), and a
note ``.insitu/migrated-home.txt`` says so. Under the former layout those files
were already readable from every project of that user; moving them into one
project confines them from now on without losing work, while copying them into
every project would keep the mixing this layout ends.
"""

from __future__ import annotations

import os
import secrets
import stat

from hub.fsops import UnsafePath, mkdir_at, open_dir_at, open_trusted_dir, remove_tree_at, write_file_at

__all__ = ["prepare_home", "prepare_runtime", "remove_runtime", "HUB_DIR", "RUN_DIR"]

HUB_DIR = "hub"
RUN_DIR = "run"
MIGRATION_NOTE = ".insitu/migrated-home.txt"


def _open_or_make_root_dir(dfd: int, name: str, mode: int = 0o711) -> tuple[int, os.stat_result | None]:
    """Open ``name`` in ``dfd`` as a folder; create it root-owned when missing. Returns (fd, stat of
    what was there before, or None when created)."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return mkdir_at(dfd, name, mode, (0, 0)), None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(name, "exists and is not a folder")
    return open_dir_at(dfd, name), st


def prepare_home(home_root: str, user: str, project: str, uid: int, gid: int, mode: int = 0o700,
                 log=None) -> str:
    """Create (or check) ``<home_root>/<user>/<project>``; migrate a former single home. Returns its path."""
    root_fd = open_trusted_dir(home_root, create_mode=0o711)
    try:
        ufd, before = _open_or_make_root_dir(root_fd, user)
        try:
            ust = os.fstat(ufd)
            if ust.st_uid != 0:
                if ust.st_uid != uid:
                    raise UnsafePath(f"{home_root}/{user}", f"belongs to uid {ust.st_uid}, neither root nor {uid}")
                # the former single home of this user: it becomes this project's home
                os.close(ufd)
                ufd = -1
                legacy = f".migrating-{user}-{secrets.token_hex(4)}"
                os.rename(user, legacy, src_dir_fd=root_fd, dst_dir_fd=root_fd)
                ufd = mkdir_at(root_fd, user, 0o711, (0, 0))
                os.rename(legacy, project, src_dir_fd=root_fd, dst_dir_fd=ufd)
                _note_migration(ufd, project, uid, gid)
                if log:
                    log.warning("home of %s: the former single home is now the home of project %s", user, project)
            elif ust.st_mode & 0o022:
                raise UnsafePath(f"{home_root}/{user}", "writable by others")
            try:
                pst = os.stat(project, dir_fd=ufd, follow_symlinks=False)
            except FileNotFoundError:
                os.close(mkdir_at(ufd, project, mode, (uid, gid)))
            else:
                if not stat.S_ISDIR(pst.st_mode):
                    raise UnsafePath(f"{home_root}/{user}/{project}", "not a folder")
                if pst.st_uid != uid:
                    raise UnsafePath(f"{home_root}/{user}/{project}", f"belongs to uid {pst.st_uid}, not {uid}")
        finally:
            if ufd >= 0:
                os.close(ufd)
    finally:
        os.close(root_fd)
    return os.path.join(os.path.realpath(home_root), user, project)


def _note_migration(user_fd: int, project: str, uid: int, gid: int) -> None:
    """Leave a note in the migrated home, written as the researcher would see it (best effort,
    by descriptors: the folders below the home belong to the researcher)."""
    try:
        hfd = open_dir_at(user_fd, project)
    except OSError:
        return
    try:
        try:
            ifd = open_dir_at(hfd, ".insitu")
        except FileNotFoundError:
            ifd = mkdir_at(hfd, ".insitu", 0o700, (uid, gid))
        try:
            if os.fstat(ifd).st_uid not in (0, uid):
                return
            name = os.path.basename(MIGRATION_NOTE)
            try:
                write_file_at(ifd, name, (
                    f"This folder was your single home before homes were kept per project.\n"
                    f"It is now the home of project {project} only; other projects start with an empty home.\n"
                ).encode(), 0o644)
            except FileExistsError:
                return
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=ifd)
            try:
                os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
        finally:
            os.close(ifd)
    except OSError:
        pass
    finally:
        os.close(hfd)


def prepare_runtime(runtime_root: str, uid: int, gid: int, etc_files: dict[str, str]) -> str:
    """Create a fresh runtime folder (layout above) and return its path."""
    root_fd = open_trusted_dir(runtime_root, create_mode=0o711)
    try:
        name = f"{uid}-{secrets.token_hex(4)}"
        rfd = mkdir_at(root_fd, name, 0o711, (0, 0))
        try:
            efd = mkdir_at(rfd, "etc", 0o755, (0, 0))
            try:
                for f, text in etc_files.items():
                    write_file_at(efd, f, text.encode(), 0o644)
            finally:
                os.close(efd)
            os.close(mkdir_at(rfd, HUB_DIR, 0o755, (0, 0)))
            runfd = mkdir_at(rfd, RUN_DIR, 0o700, (uid, gid))
            try:
                os.close(mkdir_at(runfd, "jupyter", 0o700, (uid, gid)))
            finally:
                os.close(runfd)
        finally:
            os.close(rfd)
    finally:
        os.close(root_fd)
    return os.path.join(os.path.realpath(runtime_root), name)


def remove_runtime(runtime_dir: str) -> None:
    """Remove a runtime folder made by ``prepare_runtime`` (by descriptors; symlinks are never followed)."""
    parent, name = os.path.split(os.path.normpath(runtime_dir))
    root_fd = open_trusted_dir(parent)
    try:
        remove_tree_at(root_fd, name)
    finally:
        os.close(root_fd)
