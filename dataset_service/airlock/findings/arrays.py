"""Array findings: the shapes of arrays (.npy headers, NIfTI headers, numpy arrays and torch tensors inside
pickles, walked with inert stubs and never executed) judged as image volumes or images."""
from __future__ import annotations

import io
import pickle
import re
import struct
from typing import Any, Iterable

from .report import Collector, Limits

NPY_MAGIC = b"\x93NUMPY"


def shape_findings(shape: Iterable[int], where: str, limits: Limits, out: Collector, member: str | None) -> None:
    shape = tuple(int(s) for s in shape)
    dims = sorted(shape, reverse=True)
    # a volume: two in-plane extents of an image and, beside them, as many slices as a series of the lake
    if len(dims) >= 3 and dims[1] >= limits.volume_min_extent and dims[2] >= limits.volume_min_slices:
        out.add("volume", "high", f"{where} of shape {shape} looks like an image volume", member)
    elif len(shape) >= 2 and sum(1 for s in shape if s >= limits.image_min_extent) >= 2:
        out.add("image-array", "medium", f"{where} of shape {shape} looks like an image", member)


def npy_shape(data: bytes) -> tuple[int, ...] | None:
    """The shape in a .npy header, without reading the array."""
    if not data.startswith(NPY_MAGIC) or len(data) < 10:
        return None
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        if len(data) < 12:
            return None
        (hlen,) = struct.unpack("<I", data[8:12])
        start = 12
    header = data[start:start + hlen].decode("latin1", "replace")
    m = re.search(r"'shape'\s*:\s*\(([^)]*)\)", header)
    if not m:
        return None
    try:
        return tuple(int(x) for x in m.group(1).replace(" ", "").split(",") if x)
    except ValueError:
        return None


def nifti_shape(head: bytes) -> tuple[int, ...] | None:
    """Image dimensions of a NIfTI-1 or NIfTI-2 header, ``None`` if not NIfTI."""
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        for endian in "<>":
            (sizeof_hdr,) = struct.unpack(endian + "i", head[:4])
            if sizeof_hdr == 348:
                dims = struct.unpack(endian + "8h", head[40:56])
                nd = max(0, min(7, dims[0]))
                return tuple(int(d) for d in dims[1:1 + nd])
        return ()
    if len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        for endian in "<>":
            (sizeof_hdr,) = struct.unpack(endian + "i", head[:4])
            if sizeof_hdr == 540:
                dims = struct.unpack(endian + "8q", head[16:80])
                nd = max(0, min(7, dims[0]))
                return tuple(int(d) for d in dims[1:1 + nd])
        return ()
    return None


class _Stub:
    """An inert stand-in for any global a pickle names; records what it was given."""

    def __init__(self, qualname: str, args: tuple = ()):  # noqa: D401
        self.qualname = qualname
        self.args = args
        self.state: Any = None

    def __call__(self, *args, **kwargs):
        return _Stub(self.qualname, args)

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):  # pragma: no cover - never pickled again
        raise TypeError("stub")


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # never imports anything
        return _Stub(f"{module}.{name}")

    def persistent_load(self, pid):
        return _Stub("persistent", (pid,) if not isinstance(pid, tuple) else pid)


def pickled_shapes(data: bytes, max_items: int = 100_000) -> list[tuple[str, tuple[int, ...]]]:
    """Shapes of numpy arrays and torch tensors inside a pickle, found without executing it."""
    try:
        obj = _InertUnpickler(io.BytesIO(data)).load()
    except Exception:
        return []
    found: list[tuple[str, tuple[int, ...]]] = []
    stack: list[Any] = [obj]
    seen: set[int] = set()
    budget = max_items
    while stack and budget > 0:
        budget -= 1
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, _Stub):
            q = x.qualname
            if q.startswith("torch._utils._rebuild_tensor") and len(x.args) >= 3:
                size = x.args[2]
                if isinstance(size, (tuple, list)) and all(isinstance(s, int) for s in size):
                    found.append(("tensor", tuple(size)))
            elif q.endswith("_reconstruct") and isinstance(x.state, tuple) and len(x.state) >= 2:
                shape = x.state[1]
                if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
                    found.append(("array", shape))
            stack.extend(x.args)
            if x.state is not None:
                stack.append(x.state)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
    return found
