"""Fast reading of the few DICOM header fields the catalogue needs.

``read_header(data)`` walks the data elements of an Explicit or Implicit VR
Little Endian file up to (0020,000E) and returns the catalogue fields; for any
other encoding, or anything it does not expect (undefined-length sequences
before the fields, truncated elements), it falls back to pydicom, which is the
reference. Raises ``NotDicom`` with a reason for a file that is not DICOM or
lacks its instance, study or series UID. A file without Modality is kept with
the modality ``UNKNOWN`` (no DICOM defined term has that name).
"""
from __future__ import annotations

import io
import struct

WANTED = {
    0x00080018: "sop_uid",
    0x00080020: "study_date",
    0x00080060: "modality",
    0x00081030: "study_description",
    0x00180015: "body_part",
    0x0020000D: "study_uid",
    0x0020000E: "series_uid",
}
LAST = 0x0020000E
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
_U16 = struct.Struct("<HH")
_U32 = struct.Struct("<I")


class NotDicom(ValueError):
    pass


class _Fallback(Exception):
    pass


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00 ").decode("latin-1").strip()


def _walk(data: bytes, pos: int, explicit: bool, fields: dict | None, stop_group: int | None, stop: int):
    """Walk elements from ``pos``; returns (fields, pos). Raises _Fallback when unsure."""
    n = len(data)
    out = {} if fields is None else fields
    while pos + 8 <= n:
        group, elem = _U16.unpack_from(data, pos)
        tag = (group << 16) | elem
        if stop_group is not None and group != stop_group:
            return out, pos
        if tag > stop:
            return out, pos
        if explicit:
            vr = data[pos + 4:pos + 6]
            if vr in LONG_VRS:
                if pos + 12 > n:
                    raise NotDicom("truncated DICOM file")
                length = _U32.unpack_from(data, pos + 8)[0]
                pos += 12
            else:
                length = data[pos + 6] | (data[pos + 7] << 8)
                pos += 8
        else:
            length = _U32.unpack_from(data, pos + 4)[0]
            pos += 8
        if length == 0xFFFFFFFF:
            raise _Fallback()
        if pos + length > n:
            raise NotDicom("truncated DICOM file (an element runs past the end)")
        key = WANTED.get(tag) if fields is None else tag
        if key is not None:
            out[key] = data[pos:pos + length]
        pos += length
    return out, pos


def read_header(data: bytes) -> dict:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise NotDicom("no DICM preamble (not a DICOM Part 10 file)")
    try:
        meta, pos = _walk(data, 132, True, {}, 0x0002, 0x0002FFFF)
        ts = _text(meta.get(0x00020010, b""))
        if ts not in (EXPLICIT_LE, IMPLICIT_LE):
            raise _Fallback()
        raw, _ = _walk(data, pos, ts == EXPLICIT_LE, None, None, LAST)
        out = {k: (_text(v) or None) for k, v in raw.items()}
        for k in WANTED.values():
            out.setdefault(k, None)
        return _normalise(out)
    except _Fallback:
        return _pydicom_header(data)


def _pydicom_header(data: bytes) -> dict:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, Exception) as e:  # pydicom raises many kinds
        raise NotDicom(f"unreadable DICOM: {type(e).__name__}: {e}") from None
    names = {"sop_uid": "SOPInstanceUID", "study_date": "StudyDate", "modality": "Modality",
             "study_description": "StudyDescription", "body_part": "BodyPartExamined",
             "study_uid": "StudyInstanceUID", "series_uid": "SeriesInstanceUID"}
    out = {}
    for k, attr in names.items():
        v = ds.get(attr)
        out[k] = str(v).strip() or None if v is not None else None
    return _normalise(out)


REQUIRED = ("sop_uid", "study_uid", "series_uid")
UNKNOWN_MODALITY = "UNKNOWN"  # a file without (0008,0060) Modality is catalogued, not dropped


def _normalise(out: dict) -> dict:
    missing = [k for k in REQUIRED if not out.get(k)]
    if missing:
        raise NotDicom(f"missing required DICOM attributes: {', '.join(missing)}")
    if not out.get("modality"):
        out["modality"] = UNKNOWN_MODALITY
    d = out.get("study_date")
    if d and len(d) == 8 and d.isdigit():
        out["study_date"] = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    elif d:
        out["study_date"] = None
    for k, limit in (("modality", 16), ("body_part", 64), ("study_description", 255)):
        if out.get(k):
            out[k] = out[k][:limit]
    for k in ("sop_uid", "study_uid", "series_uid"):
        if out.get(k):
            out[k] = out[k][:64]
    return out
