"""POSIX access ACLs written directly as the ``system.posix_acl_access`` xattr.

``grant_group(path, gid, perms)`` adds (or widens) the entry ``group:<gid>:<perms>``
keeping every other entry, and recomputes the mask as the union of the group
class entries, exactly as ``setfacl -m g:<gid>:<perms>`` does — without a
process per file. ``revoke_group`` removes an entry. ``read_acl`` returns the
entries (tests compare them with ``getfacl``).

Xattr format (linux/posix_acl_xattr.h): little-endian u32 version 2, then
entries of (u16 tag, u16 perm, u32 id), sorted by tag then id.
"""
from __future__ import annotations

import errno
import functools
import os
import stat
import struct

VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
XATTR = "system.posix_acl_access"
_HDR = struct.Struct("<I")
_ENT = struct.Struct("<HHI")


class AclUnsupported(OSError):
    pass


def _from_mode(mode: int) -> dict[tuple[int, int], int]:
    return {(USER_OBJ, UNDEFINED_ID): (mode >> 6) & 7, (GROUP_OBJ, UNDEFINED_ID): (mode >> 3) & 7,
            (OTHER, UNDEFINED_ID): mode & 7}


def _decode(raw: bytes) -> dict[tuple[int, int], int]:
    if len(raw) < 4 or _HDR.unpack_from(raw)[0] != VERSION or (len(raw) - 4) % 8:
        raise ValueError("not a POSIX ACL xattr")
    out = {}
    for off in range(4, len(raw), 8):
        tag, perm, id_ = _ENT.unpack_from(raw, off)
        out[(tag, id_)] = perm
    return out


def _encode(entries: dict[tuple[int, int], int]) -> bytes:
    named = any(t in (USER, GROUP) for t, _ in entries)
    e = dict(entries)
    if named:
        mask = e.get((GROUP_OBJ, UNDEFINED_ID), 0)
        for (t, _), p in e.items():
            if t in (USER, GROUP):
                mask |= p
        e[(MASK, UNDEFINED_ID)] = mask
    else:
        e.pop((MASK, UNDEFINED_ID), None)
    return _HDR.pack(VERSION) + b"".join(_ENT.pack(t, p, i) for (t, i), p in sorted(e.items()))


def read_acl(path: str | os.PathLike, st: os.stat_result | None = None) -> dict[tuple[int, int], int]:
    try:
        return _decode(os.getxattr(path, XATTR, follow_symlinks=False))
    except OSError as e:
        if e.errno in (errno.ENODATA, getattr(errno, "ENOATTR", errno.ENODATA)):
            st = st or os.lstat(path)
            return _from_mode(stat.S_IMODE(st.st_mode))
        if e.errno == errno.EOPNOTSUPP:
            raise AclUnsupported(e.errno, f"POSIX ACLs not supported on {path}") from None
        raise


def _write(path, entries) -> None:
    try:
        os.setxattr(path, XATTR, _encode(entries), follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            raise AclUnsupported(e.errno, f"POSIX ACLs not supported on {path}") from None
        raise


@functools.lru_cache(maxsize=1024)
def _granted(current: bytes | int, gid: int, perms: int) -> bytes | None:
    """The xattr that adds ``group:<gid>:<perms>`` to ``current`` (an xattr, or a
    mode when the file has no ACL yet); ``None`` when nothing would change.

    Pure and cached: the files of a lake share a handful of distinct ACLs, so a
    build of many studies encodes each of them once."""
    entries = _decode(current) if isinstance(current, bytes) else _from_mode(current)
    key = (GROUP, gid)
    cur = entries.get(key, 0)
    if cur | perms == cur and (MASK, UNDEFINED_ID) in entries and entries[(MASK, UNDEFINED_ID)] & perms == perms:
        return None
    entries[key] = cur | perms
    entries.pop((MASK, UNDEFINED_ID), None)
    return _encode(entries)


def grant_group(path: str | os.PathLike, gid: int, perms: int, st: os.stat_result | None = None) -> bool:
    """Ensure ``group:<gid>`` has at least ``perms`` (bits r=4 w=2 x=1). True if changed."""
    try:
        current: bytes | int = os.getxattr(path, XATTR, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENODATA, getattr(errno, "ENOATTR", errno.ENODATA)):
            current = stat.S_IMODE((st or os.lstat(path)).st_mode)
        elif e.errno == errno.EOPNOTSUPP:
            raise AclUnsupported(e.errno, f"POSIX ACLs not supported on {path}") from None
        else:
            raise
    new = _granted(current, gid, perms)
    if new is None:
        return False
    try:
        os.setxattr(path, XATTR, new, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            raise AclUnsupported(e.errno, f"POSIX ACLs not supported on {path}") from None
        raise
    return True


def revoke_group(path: str | os.PathLike, gid: int) -> bool:
    entries = read_acl(path)
    if (GROUP, gid) not in entries:
        return False
    del entries[(GROUP, gid)]
    entries.pop((MASK, UNDEFINED_ID), None)
    _write(path, entries)
    return True


def grant_tree(root: str, gid: int) -> int:
    """``group:<gid>:r-x`` on ``root`` and every folder below it, ``r--`` on every file.

    Links are not followed (an entry on a link is never written). Returns the
    number of entries written.
    """
    n = 0
    stack = [root]
    while stack:
        d = stack.pop()
        n += grant_group(d, gid, 5)
        with os.scandir(d) as it:
            for e in it:
                if e.is_symlink():
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    n += grant_group(e.path, gid, 4, e.stat(follow_symlinks=False))
    return n


def set_exact(path: str | os.PathLike, owner_perms: int, gid: int, group_perms: int) -> None:
    """Replace the ACL (and so the mode) of a file the service created: ``user::<owner_perms>``,
    ``group::---``, ``group:<gid>:<group_perms>``, ``mask::<group_perms>``, ``other::---``.
    One ``setxattr`` instead of chmod + getxattr + setxattr."""
    _write(path, {(USER_OBJ, UNDEFINED_ID): owner_perms, (GROUP_OBJ, UNDEFINED_ID): 0,
                  (GROUP, gid): group_perms, (OTHER, UNDEFINED_ID): 0})
