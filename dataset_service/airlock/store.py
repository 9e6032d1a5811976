"""The frozen store: files copied out of a workspace home, content-addressed and read-only.

    store = FrozenStore(root)
    frozen = store.freeze_from_home(home, "results/fig1.png", max_size=...)
    frozen.sha256, frozen.size
    with store.open(frozen.sha256) as fh: ...

Invariants
- A name is accepted only if it is relative, has no ``.``/``..``/empty
  components, no NUL or control characters, no backslash, and at most
  ``MAX_NAME`` characters (``check_name``).
- The file is opened component by component from the home with
  ``O_NOFOLLOW`` (``openat``): a symlink anywhere in the name is refused, so
  nothing outside the home can be reached, whatever happens to the home while
  it is read. Only regular files with one link, owned by the owner of the
  home, are accepted; FIFOs and devices are never opened for reading
  (``O_NONBLOCK`` + ``fstat`` before the first read).
- The copy is hashed while it is read from the one open descriptor, so the
  digest is the digest of the bytes stored; a file that grows past
  ``max_size`` while read is refused.
- Stored objects live at ``<root>/sha256/<aa>/<digest>``, mode 0444, in
  folders of mode 0700 owned by the service: nothing in the store is ever
  rewritten (an existing object with the same digest is kept).
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_NAME = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class RefusedFile(Exception):
    """A file that may not enter the airlock; ``reason`` says why (shown to the researcher)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class FrozenFile:
    name: str
    sha256: str
    size: int


def check_name(name: str) -> tuple[str, ...]:
    """The components of a file name relative to the home, or ``RefusedFile``."""
    if not isinstance(name, str) or not name:
        raise RefusedFile(str(name), "empty file name")
    if len(name) > MAX_NAME:
        raise RefusedFile(name[:64] + "...", f"file name longer than {MAX_NAME} characters")
    if _CONTROL.search(name) or "\\" in name:
        raise RefusedFile(name, "control characters or backslashes in the file name")
    if name != name.strip():
        raise RefusedFile(name, "leading or trailing spaces in the file name")
    if name.startswith("/") or name.startswith("~"):
        raise RefusedFile(name, "name the file relative to your home folder")
    parts = tuple(name.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise RefusedFile(name, "empty, '.' or '..' path components are not allowed")
    if any(len(p.encode()) > 255 for p in parts):
        raise RefusedFile(name, "a path component longer than 255 bytes")
    return parts


def _open_in_home(home: Path, parts: tuple[str, ...], name: str) -> tuple[int, os.stat_result]:
    """An O_RDONLY descriptor of ``home/parts`` reached without following any symlink."""
    try:
        dfd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise RefusedFile(name, "your home folder does not exist")
    home_owner = os.fstat(dfd).st_uid
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            except FileNotFoundError:
                raise RefusedFile(name, "no such file")
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RefusedFile(name, f"{part!r} is a symlink or not a folder")
                raise RefusedFile(name, f"cannot open: {e.strerror}")
            os.close(dfd)
            dfd = nfd
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dfd)
        except FileNotFoundError:
            raise RefusedFile(name, "no such file")
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RefusedFile(name, "symlinks are not accepted: name the file itself")
            if e.errno == errno.ENXIO:
                raise RefusedFile(name, "not a regular file")
            raise RefusedFile(name, f"cannot open: {e.strerror}")
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "not a regular file" if not stat.S_ISDIR(st.st_mode) else "a folder: name the files in it"
    elif st.st_nlink != 1:
        problem = "a file with several hard links is not accepted: copy it first"
    elif st.st_uid != home_owner:
        problem = "the file is not owned by the owner of the home folder"
    if problem:
        os.close(fd)
        raise RefusedFile(name, problem)
    return fd, st


class FrozenStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _prepare(self) -> Path:
        objects = self.root / "sha256"
        for d in (self.root, objects, self.root / "tmp"):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        return objects

    def path_of(self, sha256: str) -> Path:
        if not _DIGEST.fullmatch(sha256 or ""):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path_of(sha256), "rb")

    def freeze_from_home(self, home: Path | str, name: str, *, max_size: int) -> FrozenFile:
        """Copy ``home/name`` into the store now; returns its digest and size."""
        parts = check_name(name)
        fd, st = _open_in_home(Path(home), parts, name)
        if st.st_size > max_size:
            os.close(fd)
            raise RefusedFile(name, f"{st.st_size} bytes, above the limit of {max_size} bytes per file")
        objects = self._prepare()
        h = hashlib.sha256()
        size = 0
        tmp = tempfile.NamedTemporaryFile(dir=self.root / "tmp", delete=False)
        try:
            with os.fdopen(fd, "rb", closefd=True) as src, tmp:
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_size:
                        raise RefusedFile(name, f"the file grew above the limit of {max_size} bytes while read")
                    h.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            digest = h.hexdigest()
            dest = objects / digest[:2] / digest
            dest.parent.mkdir(mode=0o700, exist_ok=True)
            os.chmod(tmp.name, 0o444)
            if dest.exists():
                os.unlink(tmp.name)
            else:
                os.replace(tmp.name, dest)
            return FrozenFile(name=name, sha256=digest, size=size)
        except BaseException:
            try:
                os.unlink(tmp.name)
            except FileNotFoundError:
                pass
            raise

    def verify(self, sha256: str) -> bool:
        """True if the stored object still hashes to its name."""
        h = hashlib.sha256()
        with self.open(sha256) as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                h.update(chunk)
        return h.hexdigest() == sha256


def remove_from_home(home: Path | str, name: str) -> None:
    """Remove the regular file ``home/name`` (a workspace draft), reached without following any symlink:
    the unlink happens in the folder opened by descriptor, never by a path the researcher could swap."""
    parts = check_name(name)
    fd, st = _open_in_home(Path(home), parts, name)  # refuses symlinks and non-regular files on the way
    os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise RefusedFile(name, "not a regular file")
    dfd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            os.close(dfd)
            dfd = nfd
        now = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise RefusedFile(name, "the file changed while it was being removed: try again")
        os.unlink(parts[-1], dir_fd=dfd)
    except OSError as e:
        raise RefusedFile(name, f"cannot remove: {e.strerror}")
    finally:
        os.close(dfd)


def read_small_from_home(home: Path | str, name: str, *, max_size: int = 64 * 1024) -> bytes:
    """The bytes of a small file of the home, opened with the same rules as a freeze."""
    parts = check_name(name)
    fd, st = _open_in_home(Path(home), parts, name)
    with os.fdopen(fd, "rb", closefd=True) as fh:
        if st.st_size > max_size:
            raise RefusedFile(name, f"larger than {max_size} bytes")
        return fh.read(max_size + 1)[:max_size]


def list_home(home: Path | str, *, max_entries: int = 2000, max_depth: int = 8,
              skip_hidden: bool = True) -> list[tuple[str, int]]:
    """Regular files of the home as (name, size), sorted; symlinks are neither followed nor listed."""
    home = Path(home)
    out: list[tuple[str, int]] = []
    stack: list[tuple[Path, str, int]] = [(home, "", 0)]
    while stack and len(out) < max_entries:
        folder, rel, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for e in entries:
            if skip_hidden and e.name.startswith("."):
                continue
            name = f"{rel}{e.name}"
            try:
                if e.is_symlink():
                    continue
                if e.is_dir(follow_symlinks=False):
                    if depth + 1 < max_depth:
                        stack.append((Path(e.path), name + "/", depth + 1))
                elif e.is_file(follow_symlinks=False):
                    out.append((name, e.stat(follow_symlinks=False).st_size))
            except OSError:
                continue
            if len(out) >= max_entries:
                break
    return sorted(out)
