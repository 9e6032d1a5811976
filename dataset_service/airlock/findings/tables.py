"""Table findings on CSV/TSV text: identifier columns, subject ids of the lake, few rows per subject,
small counts; and the table's preview."""
from __future__ import annotations

import csv
import io
import re
import statistics
from typing import Any

from .report import Collector, Limits

_IDENTIFIER_HEADER = re.compile(
    r"^(patient|pat|subject|subj|participant|case)?_?(id|identifier|name|number|no|mrn|nhs|ssn|"
    r"birth_?date|date_?of_?birth|dob|birth|initials|address|phone|email)$|"
    r"^(mrn|ssn|nhs_?number|accession(_?number)?|patient.*|.*_?birth.*|dob|"
    r"(study|series|sop)_?instance_?uid|first_?name|last_?name|surname|full_?name)$"
)
_SUBJECT_HEADER = re.compile(r"^(subject|subj|patient|participant|case)(_?(id|identifier))?$")
_COUNT_HEADER = re.compile(r"^(n|count|counts|freq|frequency|n_.+|num_.+|.+_count|.+_n)$")


def _norm_header(h: str) -> str:
    h = re.sub(r"([a-z])([A-Z])", r"\1_\2", h.strip())
    return re.sub(r"[^a-z0-9]+", "_", h.lower()).strip("_")


def inspect_table(text: str, limits: Limits, out: Collector, member: str | None = None) -> dict[str, Any] | None:
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


def looks_text(data: bytes) -> bool:
    if not data:
        return True
    if b"\x00" in data[:8192]:
        return False
    try:
        data[:8192].decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start > 8180  # cut inside a multi-byte character


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
