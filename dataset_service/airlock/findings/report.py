"""The findings' vocabulary: thresholds (``Limits``), one ``Finding``, a file's ``FileReport``, and the
``Collector`` that keeps each code once per member."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("high", "medium", "info")

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


class Collector:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self._seen: set[tuple[str, str | None]] = set()

    def add(self, code: str, severity: str, message: str, member: str | None = None) -> None:
        key = (code, member)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(Finding(code, severity, message, member))
