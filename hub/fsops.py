"""Root's file operations near places a researcher can write: by descriptor, never by path.

The hub and the local spawner run as root, and a workspace's code runs as the
researcher's uid and may rename, replace or symlink anything in a folder that
uid can write, at any moment (issue 11, item 2). So root:

* reaches a folder it works in through a *trusted path*: every component is
  opened with ``O_NOFOLLOW`` from its parent's descriptor, and every folder on
  the way belongs to root and is not writable by anyone else (a sticky folder
  such as ``/tmp`` is accepted when the next component belongs to root);
* creates, opens, changes and removes entries relative to such a descriptor
  (``mkdirat``, ``openat`` with ``O_NOFOLLOW|O_EXCL``, ``fchown``/``fchmod`` on
  the opened descriptor, ``shutil.rmtree(dir_fd=...)``), never by a path that
  passes through a folder the researcher can write;
* keeps what it re-creates later (the hub-API socket after a hub restart) in
  root-owned folders only.

Every function raises :class:`UnsafePath` (an ``OSError``) when a check fails;
nothing is followed, changed or removed then.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

__all__ = [
    "UnsafePath",
    "open_trusted_dir",
    "mkdir_at",
    "open_dir_at",
    "write_file_at",
    "remove_tree_at",
    "remove_at",
]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path root must not act on (a symlink, a foreign owner, a writable parent)."""

    def __init__(self, path: str, reason: str):
        super().__init__(errno.EPERM, f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _trusted(st: os.stat_result) -> bool:
    return st.st_uid == 0 and not (st.st_mode & 0o022)


def open_trusted_dir(path: str, *, create_mode: int | None = None) -> int:
    """A descriptor of the folder ``path``, reached through root-owned folders only.

    ``path`` is resolved once with ``realpath`` (root-owned symlinks such as
    ``/var/run`` are fine); the resolved path is then walked component by
    component with ``O_NOFOLLOW``, so a component swapped in between fails the
    walk. With ``create_mode`` the last component is created (root-owned,
    that mode) when missing. The folder itself must be root-owned and not
    writable by group or others."""
    real = os.path.realpath(path)
    parts = [p for p in real.split("/") if p]
    fd = os.open("/", _DIR)
    try:
        parent_st = os.fstat(fd)
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if not _trusted(parent_st):
                sticky = parent_st.st_uid == 0 and parent_st.st_mode & stat.S_ISVTX
                if not sticky:
                    raise UnsafePath(real, f"folder {'/' + '/'.join(parts[:i])!r} is writable by others")
            try:
                nfd = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not (last and create_mode is not None):
                    raise
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(name, _DIR, dir_fd=fd)
                st = os.fstat(nfd)
                if st.st_uid == 0:
                    os.fchmod(nfd, create_mode)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(real, f"{name!r} is not a folder (a symlink?)") from e
                raise
            os.close(fd)
            fd = nfd
            parent_st = os.fstat(fd)
            if parent_st.st_uid != 0:
                raise UnsafePath(real, f"{name!r} does not belong to root")
        if not _trusted(parent_st):
            raise UnsafePath(real, "the folder is writable by others")
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_dir_at(dir_fd: int, name: str) -> int:
    """``openat(dir_fd, name, O_DIRECTORY|O_NOFOLLOW)``: a symlink or non-folder raises UnsafePath."""
    _check_name(name)
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(name, "not a folder (a symlink?)") from e
        raise


def mkdir_at(dir_fd: int, name: str, mode: int, owner: tuple[int, int] | None = None) -> int:
    """Create the folder ``name`` in ``dir_fd`` (it must not exist) and return its
    descriptor, owner and mode set on the descriptor."""
    _check_name(name)
    os.mkdir(name, 0o700, dir_fd=dir_fd)  # mkdirat never follows a symlink: EEXIST
    fd = open_dir_at(dir_fd, name)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file_at(dir_fd: int, name: str, data: bytes, mode: int = 0o644) -> None:
    """Create the file ``name`` in ``dir_fd`` (``O_EXCL|O_NOFOLLOW``) holding ``data``."""
    _check_name(name)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def remove_at(dir_fd: int, name: str) -> None:
    """Unlink ``name`` (a file, socket or symlink; never followed) in ``dir_fd`` if present."""
    _check_name(name)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` and everything below it, by descriptors
    (``shutil.rmtree`` with ``dir_fd``: symlinks are unlinked, never followed)."""
    _check_name(name)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    if not shutil.rmtree.avoids_symlink_attacks:  # an explicit check: ``python -O`` keeps it
        raise UnsafePath(name, "this platform's shutil.rmtree can follow symbolic links")
    shutil.rmtree(name, dir_fd=dir_fd)


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise UnsafePath(name, "not a single path component")
