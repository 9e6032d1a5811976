"""Which family a blob belongs to (DICOM, image, array, NIfTI, archive, pickle, encoded, text, table,
binary), with archives, gzip/xz/bzip2 streams and base64/hex text unpacked and checked member by member;
``inspect_file`` and the reviewer's ``thumbnail_png``."""
from __future__ import annotations

import gzip
import io
import re
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from .arrays import NPY_MAGIC, nifti_shape, npy_shape, pickled_shapes, shape_findings
from .dicom import is_dicom_file, scan_dicom_bytes
from .report import Collector, FileReport, Limits
from .tables import decode, inspect_table, looks_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"


def _inspect_bytes(data: bytes, name: str, limits: Limits, out: Collector, member: str | None, depth: int,
                   path: Path | None = None) -> str:
    """Findings on one blob (a file or an archive member); returns its kind."""
    lower = name.lower()
    head = data[:1024]

    if is_dicom_file(head, path if member is None else None, data if member is not None else None):
        out.add("dicom", "high", "a DICOM file" + (" inside the archive" if member else ""), member)
        return "dicom"

    elements, keywords = scan_dicom_bytes(data)
    strong = [e for e in elements if e in ("DICM file meta", "UID root 1.2.840.10008")]
    if strong or len(elements) >= 2:
        out.add("dicom-embedded", "high", "DICOM header bytes: " + ", ".join(elements[:8]), member)

    kind = "binary"
    if data.startswith(PNG_MAGIC) or data.startswith(JPEG_MAGIC):
        out.add("image", "info", "an image: look at it before approving", member)
        kind = "image"
    elif data.startswith(NPY_MAGIC):
        kind = "array"
        shape = npy_shape(data)
        if shape is not None:
            shape_findings(shape, "array", limits, out, member)
    elif nifti_shape(head if len(head) >= 540 else data[:540]) is not None:
        kind = "nifti"
        shape = nifti_shape(data[:540])
        out.add("nifti", "high", f"a NIfTI image{' of shape ' + str(shape) if shape else ''}", member)
        if shape:
            shape_findings(shape, "NIfTI image", limits, out, member)
    elif data.startswith(ZIP_MAGIC):
        kind = "archive"
        _inspect_zip(data, limits, out, member, depth)
    elif data.startswith(GZIP_MAGIC) or data.startswith(XZ_MAGIC) or data.startswith(BZ2_MAGIC):
        kind = "archive"
        codec, suffixes = (("gzip", (".gz",)) if data.startswith(GZIP_MAGIC) else
                           ("xz", (".xz", ".lzma")) if data.startswith(XZ_MAGIC) else ("bzip2", (".bz2",)))
        inner = _decompress(data, codec, limits.scan_bytes)
        if inner is None:
            out.add("unreadable", "medium", f"a {codec} stream that could not be read", member)
            inner = b""
        if inner and depth < limits.max_depth:
            inner_name = next((lower[:-len(x)] for x in suffixes if lower.endswith(x)), lower)
            sub = (member + "!" if member else "") + (inner_name.rsplit("/", 1)[-1] or codec)
            inner_kind = _inspect_bytes(inner, inner_name, limits, out, sub, depth + 1)
            if inner_kind in ("nifti", "dicom"):
                kind = inner_kind
    elif data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        kind = "pickle"
        for what, shape in pickled_shapes(data):
            shape_findings(shape, f"pickled {what}", limits, out, member)
    elif looks_text(data) and (decoded := _text_encoded(data)) is not None and depth < limits.max_depth:
        encoding, inner = decoded  # base64 or hex of something else: what it encodes is what leaves
        kind = "encoded"
        sub = (member + "!" if member else "") + encoding
        inner_kind = _inspect_bytes(inner, lower, limits, out, sub, depth + 1)
        if inner_kind in ("nifti", "dicom"):
            kind = inner_kind
    elif looks_text(data):
        kind = "text"
        if lower.endswith((".csv", ".tsv", ".txt", ".tab")) and (lower.endswith((".csv", ".tsv", ".tab"))
                                                                  or b"," in data[:4096] or b"\t" in data[:4096]):
            kind = "table"
        if kind == "table":
            inspect_table(decode(data), limits, out, member)

    if kind == "binary" and len(data) >= OPAQUE_MIN_BYTES and entropy(data[:65536]) >= OPAQUE_BITS:
        out.add("opaque", "medium", f"{entropy(data[:65536]):.2f} bits per byte in a format the checker cannot "
                                    "read (compressed or encrypted?): ask what it is", member)
    if keywords and kind not in ("text", "table", "dicom"):
        out.add("dicom-keywords", "medium", "DICOM keywords inside a binary file: " + ", ".join(keywords[:8]), member)
    return kind


XZ_MAGIC = b"\xfd7zXZ\x00"
BZ2_MAGIC = b"BZh"
OPAQUE_MIN_BYTES = 4096
OPAQUE_BITS = 7.5
_B64 = re.compile(rb"^[A-Za-z0-9+/=_-]+$")
_HEX = re.compile(rb"^[0-9a-fA-F]+$")


def _decompress(data: bytes, codec: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a gzip, xz or bzip2 stream; None when it cannot be read."""
    import bz2
    import lzma

    try:
        if codec == "gzip":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
                return g.read(limit)
        d = lzma.LZMADecompressor() if codec == "xz" else bz2.BZ2Decompressor()
        return d.decompress(data, max_length=limit)
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return None


def _text_encoded(data: bytes) -> tuple[str, bytes] | None:
    """(``base64`` | ``hex``, the decoded bytes) when the whole text is one such encoding of binary data."""
    import base64
    import binascii

    if b" " in data[:4096]:  # words: prose, not one encoded blob
        return None
    compact = b"".join(data[:limits_scan_text].split())
    if len(compact) < 64:
        return None
    if _HEX.match(compact) and len(compact) % 2 == 0:
        return "hex", bytes.fromhex(compact.decode("ascii"))
    if _B64.match(compact):
        try:
            raw = (base64.urlsafe_b64decode if (b"-" in compact or b"_" in compact) else base64.b64decode)(
                compact + b"=" * (-len(compact) % 4))
        except (binascii.Error, ValueError):
            return None
        return ("base64", raw) if not looks_text(raw) else None
    return None


limits_scan_text = 64 * 1024 * 1024  # encoded text decoded at most this far


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    import math
    from collections import Counter

    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def _inspect_zip(data: bytes, limits: Limits, out: Collector, member: str | None, depth: int) -> None:
    if depth >= limits.max_depth:
        out.add("unreadable", "medium", "archive nested too deep to inspect", member)
        return
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        out.add("unreadable", "medium", "a zip archive that could not be read", member)
        return
    if len(infos) > limits.max_members:
        out.add("unreadable", "medium", f"{len(infos)} archive members: only {limits.max_members} checked", member)
    prefix = member + "!" if member else ""
    for info in infos[:limits.max_members]:
        if info.is_dir():
            continue
        try:
            with zf.open(info) as fh:
                blob = fh.read(limits.scan_bytes)
        except Exception:
            out.add("unreadable", "medium", f"archive member {info.filename!r} could not be read", prefix + info.filename)
            continue
        sub = prefix + info.filename
        mname = info.filename.lower()
        if mname.endswith("data.pkl") or mname.endswith(".pkl"):
            # torch.save's zip format: archive/data.pkl names the tensors and their sizes
            for what, shape in pickled_shapes(blob):
                shape_findings(shape, f"stored {what}", limits, out, sub)
            elements, keywords = scan_dicom_bytes(blob)
            if any(e in ("DICM file meta", "UID root 1.2.840.10008") for e in elements) or len(elements) >= 2:
                out.add("dicom-embedded", "high", "DICOM header bytes: " + ", ".join(elements[:8]), sub)
            if keywords:
                out.add("dicom-keywords", "medium", "DICOM keywords: " + ", ".join(keywords[:8]), sub)
            continue
        _inspect_bytes(blob, mname, limits, out, sub, depth + 1)


def _read_head(fh: BinaryIO, n: int) -> bytes:
    return fh.read(n)


def inspect_file(path: Path | str, name: str, limits: Limits = Limits()) -> FileReport:
    """The report of one frozen file; ``name`` is its path as the researcher named it."""
    path = Path(path)
    size = path.stat().st_size
    out = Collector()
    with open(path, "rb") as fh:
        data = fh.read(limits.scan_bytes)
    if size > limits.scan_bytes:
        out.add("unreadable", "medium", f"only the first {limits.scan_bytes} bytes were checked")
    if size > limits.large_file:
        out.add("large-file", "medium", f"{size} bytes, above the review limit of {limits.large_file}")
    kind = _inspect_bytes(data, name, limits, out, None, 0, path=path)
    preview: dict[str, Any] | None = None
    from .. import previews

    if kind == "image":
        preview = {"type": "image"}
    elif kind == "array":
        preview = previews.array_preview(path)
    elif kind == "dicom":
        preview = previews.dicom_preview(path)
    elif kind in ("text", "table") and name.lower().endswith(".ipynb"):
        preview = previews.notebook_preview(data)
    elif kind == "table":
        preview = inspect_table(decode(data), limits, Collector())
    elif kind == "text":
        preview = {"type": "text", "text": decode(data[:4096])}
    return FileReport(kind=kind, findings=out.items, preview=preview)


def thumbnail_png(path: Path | str, max_px: int = 320) -> bytes:
    """A downscaled PNG of an image for the review page (never the file's own bytes)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        im.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        im.save(buf, format="PNG")  # re-encoded: metadata chunks are not carried over
        return buf.getvalue()
