"""What the workspace gateway refuses to hand out: data files, recognised by content.

Pure functions, used by ``hub.gateway`` on every response that leaves a
workspace (the boundary), next to ``hub.workspace.lockdown`` inside the
server (the inner layer, which refuses download paths by name).

* ``kind_of(data)``: the kind of a data file from its first bytes, or None:
  ``dicom`` ("DICM" at offset 128), ``numpy`` (``.npy`` magic), ``nifti``
  (NIfTI-1/2 header size and magic), ``hdf5``, ``zip`` (``.npz``, PyTorch
  ``.pt``, any archive), ``gzip`` (``.nii.gz`` and friends).
* ``inspect(rel_path, content_type, body, large=...)``: the verdict on one
  response body: ``None`` (pass) or ``(kind, channel)``. Raw bodies are
  checked by magic; the contents API's JSON answers are decoded first
  (``format: base64``) and checked by magic and size: a binary file larger
  than ``large`` bytes is refused as ``large-binary`` whatever its type.

What this does not do, and cannot: a researcher's code can re-encode data
(text, images, anything) before it leaves; rendered outputs reach the screen.
The README's isolation section states that boundary.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import unquote

SNIFF_BYTES = 1024
DEFAULT_LARGE = 16 * 1024 * 1024

_NIFTI1 = (b"n+1\0", b"ni1\0")
_NIFTI2 = (b"n+2\0", b"ni2\0")


def kind_of(data: bytes) -> str | None:
    """The kind of data file ``data`` starts with, or None."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(b"\x93NUMPY"):
        return "numpy"
    if len(data) >= 348 and data[344:348] in _NIFTI1 and int.from_bytes(data[:4], "little") in (348, 0x5C010000):
        return "nifti"
    if len(data) >= 8 and data[4:8] in _NIFTI2 and int.from_bytes(data[:4], "little") in (540, 0x1C020000):
        return "nifti"
    if data.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    return None


def _binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # not just a character cut at the end
    return False


def relative(path: str, base_url: str) -> str:
    """The request path below the server's base URL, unquoted, single slashes."""
    norm = re.sub(r"/{2,}", "/", path)
    base = base_url if base_url.endswith("/") else base_url + "/"
    rest = norm[len(base):] if norm.startswith(base) else norm.lstrip("/")
    return re.sub(r"/{2,}", "/", unquote(rest)).lstrip("/")


def inspect(rel_path: str, content_type: str, body: bytes, *, large: int = DEFAULT_LARGE) -> tuple[str, str] | None:
    """``(kind, channel)`` when ``body`` hands out a data file, else None."""
    channel = "contents" if rel_path.startswith("api/contents") else "http"
    if channel == "contents" and "json" in (content_type or ""):
        if b'"base64"' not in body:
            return None  # text, notebooks, listings: no file bytes in this answer (the common case, kept cheap)
        try:
            model = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            model = None
        if isinstance(model, dict) and model.get("type") == "file" and isinstance(model.get("content"), str):
            content = model["content"]
            if model.get("format") == "base64":
                try:
                    data = base64.b64decode(content, validate=False)
                except (binascii.Error, ValueError):
                    return ("undecodable", channel)
                kind = kind_of(data[:SNIFF_BYTES])
                if kind:
                    return (kind, channel)
                if len(data) > large and _binary(data):
                    return ("large-binary", channel)
            return None
        if model is not None:
            return None  # directories, notebooks, errors: JSON the lab renders
    kind = kind_of(body[:SNIFF_BYTES])
    if kind:
        return (kind, channel)
    if rel_path.startswith(("files/", "view/", "api/contents")) and len(body) > large and _binary(body):
        return ("large-binary", channel)
    return None
