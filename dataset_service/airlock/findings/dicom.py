"""DICOM findings: a DICOM file (``DICM`` at offset 128, or a data set without preamble that pydicom reads),
and DICOM evidence in any bytes (identifying elements in explicit- or implicit-VR form, UID roots, the file
meta group, attribute keywords)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

DICM_OFFSET = 128
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


def is_dicom_file(head: bytes, path: Path | None, data: bytes | None = None) -> bool:
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
