"""Reports people read, built from the trace store alone (no other service is asked).

- ``dataset_usage(store, dataset_id)``: who used a dataset when, for which
  project, which sessions ended how, which grants and exports concern it —
  every row with its trace id, anchor (block, transaction, batch root) and leaf,
  so each one can be checked against the chain.
- ``project_timeline(store, project)``: every trace of one project (requests,
  grants, sessions, exports) in sequence order.
- ``rows_csv(rows)`` / ``rows_jsonl(rows)``: the same rows as CSV (cells that a
  spreadsheet would run as a formula are quoted with a leading ``'``) or JSON lines.

Users appear as pseudonyms, as in the traces; no name is ever looked up here.
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Iterator

from tracer.store import TraceStore

PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,127}$")
FIELDS = ("seq", "time", "action", "user", "project", "session_id", "datasets", "reason", "details",
          "trace_id", "status", "block_number", "tx_hash", "batch_root", "leaf")
SESSION_START, SESSION_ENDS = "USE_DATASETS", ("END_SESSION", "START_FAILED")
EXPORT_ACTIONS = ("REQUEST_EXPORT", "APPROVE_EXPORT", "REJECT_EXPORT", "RETURN_EXPORT", "DOWNLOAD_EXPORT")
ACCESS_ACTIONS = ("REQUEST_ACCESS", "GRANT_ACCESS", "REJECT_ACCESS", "REVOKE_ACCESS")  # no expiry trace: GRANT_ACCESS carries valid_until
PAGE = 1000


def _all(fetch) -> Iterator[dict[str, Any]]:
    pos = 0
    while True:
        page = fetch(pos)
        yield from page
        if len(page) < PAGE:
            return
        pos = page[-1]["seq"]


def row(rec: dict[str, Any]) -> dict[str, Any]:
    t = rec["trace"]
    d = t.get("details") or {}
    a = rec.get("anchor") or {}
    rest = {k: v for k, v in d.items() if k not in ("project", "session_id", "reason")}
    return {
        "seq": rec["seq"], "time": t["time"], "action": t["action"], "user": t.get("user") or "",
        "project": d.get("project") or "", "session_id": d.get("session_id") or "",
        "datasets": " ".join(t.get("dataset_ids") or []), "reason": d.get("reason") or "",
        "details": json.dumps(rest, sort_keys=True, separators=(",", ":")) if rest else "",
        "trace_id": t["id"], "status": rec["status"], "block_number": a.get("block_number") or "",
        "tx_hash": a.get("tx_hash") or "", "batch_root": a.get("root") or "", "leaf": rec["leaf"],
    }


def sessions_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per session: opened (USE_DATASETS), ended (END_SESSION/START_FAILED) and why."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        sid = r["session_id"]
        if not sid:
            continue
        if r["action"] == SESSION_START:
            out.setdefault(sid, {"session_id": sid, "user": r["user"], "project": r["project"], "opened": r["time"],
                                 "ended": "", "how": "open", "datasets": r["datasets"], "trace_ids": []})
        elif r["action"] in SESSION_ENDS and sid in out:
            out[sid]["ended"] = r["time"]
            out[sid]["how"] = "failed start" if r["action"] == "START_FAILED" else (r["reason"] or "ended")
        if sid in out:
            out[sid]["trace_ids"].append(r["trace_id"])
    return list(out.values())


def dataset_usage(store: TraceStore, dataset_id: str) -> dict[str, Any]:
    rows = [row(r) for r in _all(lambda pos: store.query(dataset=dataset_id, after_seq=pos, limit=PAGE))]
    return {
        "dataset_id": dataset_id,
        "rows": rows,
        "sessions": sessions_of(rows),
        "access": [r for r in rows if r["action"] in ACCESS_ACTIONS],
        "exports": [r for r in rows if r["action"] in EXPORT_ACTIONS],
        "projects": sorted({r["project"] for r in rows if r["project"]}),
        "users": len({r["user"] for r in rows if r["action"] == SESSION_START and r["user"]}),
        "pending": sum(1 for r in rows if r["status"] != "anchored"),
    }


def project_timeline(store: TraceStore, project: str) -> dict[str, Any]:
    rows = [row(r) for r in _all(lambda pos: store.query_project(project, after_seq=pos, limit=PAGE))]
    rows = [r for r in rows if r["project"] == project]  # the text match is only a pre-filter
    return {"project": project, "rows": rows, "sessions": sessions_of(rows),
            "datasets": sorted({d for r in rows for d in r["datasets"].split() if d}),
            "pending": sum(1 for r in rows if r["status"] != "anchored")}


def _cell(v: Any) -> str:
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def rows_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(FIELDS)
    for r in rows:
        w.writerow([_cell(r[f]) for f in FIELDS])
    return buf.getvalue()


def rows_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)
