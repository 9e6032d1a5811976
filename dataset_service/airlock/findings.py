"""Automatic findings on a file frozen in the export airlock (a pure module).

``inspect_file(path, name, limits)`` reads one frozen file (never the
workspace copy) and returns a :class:`FileReport`: the file's kind, its
findings and, for images and tables, what the review page may preview. It
never executes content: pickles are walked with an unpickler whose globals
are inert stubs, archives are read member by member with byte limits.

What is flagged (``Finding.code``; severity ``high`` > ``medium`` > ``info``)

==================  ======  ====================================================
code                sev.    when
==================  ======  ====================================================
dicom               high    ``DICM`` at offset 128, or the file parses as a DICOM
                            data set without preamble (pydicom, forced, with
                            identifying tags)
dicom-embedded      high    DICOM magic + file meta group, or at least two
                            DICOM data elements in explicit-VR byte form
                            (PatientName ``10 00 10 00 'PN'`` ...), or DICOM UID
                            roots ``1.2.840.10008.`` together with a tag, inside
                            the file or any archive member (.npz, .pt, zip, gz)
dicom-keywords      medium  DICOM attribute keywords (PatientID, StudyInstanceUID
                            ...) or ``pydicom`` classes inside a binary file
                            (e.g. a pickled pydicom data set)
large-file          medium  the file is larger than ``limits.large_file``
volume              high    an array whose two largest extents are at least
                            ``limits.volume_min_extent`` and a third at least
                            ``limits.volume_min_slices`` (the slices of the
                            lake's series) (.npy, .npz, .pt, pickles of numpy
                            arrays or torch tensors, NIfTI)
image-array         medium  a 2-D array with both extents at least
                            ``limits.image_min_extent``
nifti               high    a NIfTI-1/2 image (.nii, .nii.gz)
identifier-column   high    a table column named like a patient identifier,
                            name, birth date, MRN, accession number, UID
subject-ids         medium  table cells matching the lake's subject pattern
few-rows-per-subject high   a table with a subject column and a median of fewer
                            than ``limits.min_rows_per_subject`` rows per subject
small-counts        medium  a count column (n, count, n_*) holding values in
                            ``1 .. limits.min_cell_count - 1``
image               info    a PNG/JPEG image: a reviewer must look at it
opaque              medium  at least 4 KiB of a binary format the checker cannot
                            read with 7.5 bits of entropy per byte or more
                            (compressed or encrypted): ask what it is
                            (gzip, xz and bzip2 streams are decompressed and
                            base64 or hex text decoded, and what they hold is
                            checked like a file of its own)
unreadable          medium  an archive or table that could not be read whole
==================  ======  ====================================================

Invariants: the same bytes give the same report; a report lists each code at
most once per member; reading stops at ``limits.scan_bytes`` per member.
"""
from __future__ import annotations

import csv
import gzip
import io
import pickle
import re
import statistics
import struct
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable

SEVERITIES = ("high", "medium", "info")

DICM_OFFSET = 128
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
DICOM_UID_ROOT = b"1.2.840.10008."

# explicit VR little endian encodings of identifying DICOM elements
_EXPLICIT_TAGS: dict[bytes, str] = {
    b"\x10\x00\x10\x00PN": "PatientName",
    b"\x10\x00\x20\x00LO": "PatientID",
    b"\x10\x00\x30\x00DA": "PatientBirthDate",
    b"\x10\x00\x40\x00CS": "PatientSex",
    b"\x08\x00\x18\x00UI": "SOPInstanceUID",
    b"\x08\x00\x16\x00UI": "SOPClassUID",
    b"\x20\x00\x0d\x00UI": "StudyInstanceUID",
    b"\x20\x00\x0e\x00UI": "SeriesInstanceUID",
    b"\x08\x00\x60\x00CS": "Modality",
    b"\x08\x00\x50\x00SH": "AccessionNumber",
    b"\x02\x00\x10\x00UI": "TransferSyntaxUID",
}
# implicit VR little endian: tag then a 4-byte length
_IMPLICIT_TAGS: dict[bytes, str] = {
    b"\x10\x00\x10\x00": "PatientName",
    b"\x10\x00\x20\x00": "PatientID",
    b"\x08\x00\x18\x00": "SOPInstanceUID",
    b"\x20\x00\x0d\x00": "StudyInstanceUID",
}
_DICOM_KEYWORDS = (
    b"PatientName", b"PatientID", b"PatientBirthDate", b"StudyInstanceUID", b"SeriesInstanceUID",
    b"SOPInstanceUID", b"AccessionNumber", b"pydicom.dataset", b"pydicom.dataelem", b"pydicom.tag",
)
_IDENTIFIER_HEADER = re.compile(
    r"^(patient|pat|subject|subj|participant|case)?_?(id|identifier|name|number|no|mrn|nhs|ssn|"
    r"birth_?date|date_?of_?birth|dob|birth|initials|address|phone|email)$|"
    r"^(mrn|ssn|nhs_?number|accession(_?number)?|patient.*|.*_?birth.*|dob|"
    r"(study|series|sop)_?instance_?uid|first_?name|last_?name|surname|full_?name)$"
)
_SUBJECT_HEADER = re.compile(r"^(subject|subj|patient|participant|case)(_?(id|identifier))?$")
_COUNT_HEADER = re.compile(r"^(n|count|counts|freq|frequency|n_.+|num_.+|.+_count|.+_n)$")


@dataclass(frozen=True)
class Limits:
    """Thresholds of the findings (the airlock settings carry the configured values)."""

    large_file: int = 50 * 1024 * 1024
    volume_min_extent: int = 32
    volume_min_slices: int = 8  # the third extent of a volume: calibrated on the lake's series (settings)
    image_min_extent: int = 256
    min_rows_per_subject: int = 5
    min_cell_count: int = 5
    subject_pattern: str = r"sub-\d{3,}"
    scan_bytes: int = 256 * 1024 * 1024
    max_members: int = 2000
    max_depth: int = 3
    table_rows: int = 200_000
    preview_rows: int = 20
    preview_cols: int = 20


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileReport:
    kind: str  # dicom, image, table, array, nifti, archive, pickle, text, binary
    findings: list[Finding] = field(default_factory=list)
    preview: dict[str, Any] | None = None  # {"type": "table", "header": [...], "rows": [[...]]} / {"type": "image"}

    @property
    def severity(self) -> str | None:
        for s in SEVERITIES:
            if any(f.severity == s for f in self.findings):
                return s
        return None

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "findings": [f.to_dict() for f in self.findings],
                "preview": self.preview}


class _Collector:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self._seen: set[tuple[str, str | None]] = set()

    def add(self, code: str, severity: str, message: str, member: str | None = None) -> None:
        key = (code, member)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(Finding(code, severity, message, member))


# --------------------------------------------------------------------------- bytes
def scan_dicom_bytes(data: bytes) -> tuple[list[str], list[str]]:
    """DICOM evidence in raw bytes: (element names seen in DICOM byte form, keywords seen)."""
    elements = sorted({name for pat, name in _EXPLICIT_TAGS.items() if pat in data})
    if DICOM_UID_ROOT in data:
        implicit = sorted({name for pat, name in _IMPLICIT_TAGS.items() if pat in data})
        elements = sorted(set(elements) | set(implicit) | {"UID root 1.2.840.10008"})
    dicm = data.find(b"DICM")
    while dicm != -1:
        if data[dicm + 4:dicm + 6] == b"\x02\x00":  # file meta group follows the magic
            elements = sorted(set(elements) | {"DICM file meta"})
            break
        dicm = data.find(b"DICM", dicm + 1)
    keywords = sorted({k.decode() for k in _DICOM_KEYWORDS if k in data})
    return elements, keywords


def _is_dicom_file(head: bytes, path: Path | None, data: bytes | None = None) -> bool:
    if head[DICM_OFFSET:DICM_OFFSET + 4] == b"DICM":
        return True
    # a data set without preamble starts with a group 0x0002 or 0x0008 tag
    if head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    try:
        import pydicom

        src: Any = str(path) if data is None else io.BytesIO(data)
        ds = pydicom.dcmread(src, force=True, stop_before_pixels=True)
        return any(k in ds for k in ("PatientID", "SOPInstanceUID", "StudyInstanceUID", "SOPClassUID"))
    except Exception:
        return False


# --------------------------------------------------------------------------- arrays
def _shape_findings(shape: Iterable[int], where: str, limits: Limits, out: _Collector, member: str | None) -> None:
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


# --------------------------------------------------------------------------- tables
def _norm_header(h: str) -> str:
    h = re.sub(r"([a-z])([A-Z])", r"\1_\2", h.strip())
    return re.sub(r"[^a-z0-9]+", "_", h.lower()).strip("_")


def inspect_table(text: str, limits: Limits, out: _Collector, member: str | None = None) -> dict[str, Any] | None:
    """Findings on CSV/TSV text; returns a preview (header + first rows)."""
    sample = text[:65536]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return None
    rows: list[list[str]] = []
    truncated = False
    try:
        for i, row in enumerate(reader):
            if i >= limits.table_rows:
                truncated = True
                break
            rows.append(row)
    except csv.Error:
        out.add("unreadable", "medium", "the table could not be parsed completely", member)
    if truncated:
        out.add("unreadable", "medium", f"only the first {limits.table_rows} rows were checked", member)

    norm = [_norm_header(h) for h in header]
    ids = [header[i] for i, h in enumerate(norm) if h and _IDENTIFIER_HEADER.match(h)]
    if ids:
        out.add("identifier-column", "high", "columns named like patient identifiers: " + ", ".join(ids[:10]), member)

    subject_re = re.compile(limits.subject_pattern)
    subject_cols = [i for i, h in enumerate(norm) if _SUBJECT_HEADER.match(h)]
    for i in range(len(header)):
        values = [r[i] for r in rows[:1000] if i < len(r) and r[i]]
        if values and sum(1 for v in values if subject_re.fullmatch(v.strip())) >= max(1, len(values) // 2):
            if i not in subject_cols:
                subject_cols.append(i)
    if any(subject_re.search(c) for c in header):
        out.add("subject-ids", "medium", "column headers contain subject ids of the lake", member)
    if subject_cols:
        col = subject_cols[0]
        per: dict[str, int] = {}
        for r in rows:
            if col < len(r) and r[col].strip():
                per[r[col].strip()] = per.get(r[col].strip(), 0) + 1
        lake_ids = [s for s in per if subject_re.fullmatch(s)]
        if lake_ids:
            out.add("subject-ids", "medium", f"{len(lake_ids)} subject ids of the lake in column {header[col]!r}", member)
        if per:
            med = statistics.median(per.values())
            if med < limits.min_rows_per_subject:
                out.add("few-rows-per-subject", "high",
                        f"median {med:g} rows per subject in column {header[col]!r} "
                        f"(fewer than {limits.min_rows_per_subject}): individual-level data", member)
    for i, h in enumerate(norm):
        if h and _COUNT_HEADER.match(h):
            small = 0
            for r in rows:
                if i < len(r):
                    try:
                        v = float(r[i])
                    except ValueError:
                        continue
                    if 0 < v < limits.min_cell_count and v == int(v):
                        small += 1
            if small:
                out.add("small-counts", "medium",
                        f"{small} cells of count column {header[i]!r} below {limits.min_cell_count}", member)
    return {
        "type": "table",
        "header": header[:limits.preview_cols],
        "rows": [r[:limits.preview_cols] for r in rows[:limits.preview_rows]],
        "n_rows": len(rows),
        "n_cols": len(header),
    }


def _looks_text(data: bytes) -> bool:
    if not data:
        return True
    if b"\x00" in data[:8192]:
        return False
    try:
        data[:8192].decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start > 8180  # cut inside a multi-byte character


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- dispatch
def _inspect_bytes(data: bytes, name: str, limits: Limits, out: _Collector, member: str | None, depth: int,
                   path: Path | None = None) -> str:
    """Findings on one blob (a file or an archive member); returns its kind."""
    lower = name.lower()
    head = data[:1024]

    if _is_dicom_file(head, path if member is None else None, data if member is not None else None):
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
            _shape_findings(shape, "array", limits, out, member)
    elif nifti_shape(head if len(head) >= 540 else data[:540]) is not None:
        kind = "nifti"
        shape = nifti_shape(data[:540])
        out.add("nifti", "high", f"a NIfTI image{' of shape ' + str(shape) if shape else ''}", member)
        if shape:
            _shape_findings(shape, "NIfTI image", limits, out, member)
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
            _shape_findings(shape, f"pickled {what}", limits, out, member)
    elif _looks_text(data) and (decoded := _text_encoded(data)) is not None and depth < limits.max_depth:
        encoding, inner = decoded  # base64 or hex of something else: what it encodes is what leaves
        kind = "encoded"
        sub = (member + "!" if member else "") + encoding
        inner_kind = _inspect_bytes(inner, lower, limits, out, sub, depth + 1)
        if inner_kind in ("nifti", "dicom"):
            kind = inner_kind
    elif _looks_text(data):
        kind = "text"
        if lower.endswith((".csv", ".tsv", ".txt", ".tab")) and (lower.endswith((".csv", ".tsv", ".tab"))
                                                                  or b"," in data[:4096] or b"\t" in data[:4096]):
            kind = "table"
        if kind == "table":
            inspect_table(_decode(data), limits, out, member)

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
        return ("base64", raw) if not _looks_text(raw) else None
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


def _inspect_zip(data: bytes, limits: Limits, out: _Collector, member: str | None, depth: int) -> None:
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
                _shape_findings(shape, f"stored {what}", limits, out, sub)
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
    out = _Collector()
    with open(path, "rb") as fh:
        data = fh.read(limits.scan_bytes)
    if size > limits.scan_bytes:
        out.add("unreadable", "medium", f"only the first {limits.scan_bytes} bytes were checked")
    if size > limits.large_file:
        out.add("large-file", "medium", f"{size} bytes, above the review limit of {limits.large_file}")
    kind = _inspect_bytes(data, name, limits, out, None, 0, path=path)
    preview: dict[str, Any] | None = None
    from . import previews

    if kind == "image":
        preview = {"type": "image"}
    elif kind == "array":
        preview = previews.array_preview(path)
    elif kind == "dicom":
        preview = previews.dicom_preview(path)
    elif kind in ("text", "table") and name.lower().endswith(".ipynb"):
        preview = previews.notebook_preview(data)
    elif kind == "table":
        preview = inspect_table(_decode(data), limits, _Collector())
    elif kind == "text":
        preview = {"type": "text", "text": _decode(data[:4096])}
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
