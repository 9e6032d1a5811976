"""Report pages for auditors and data holders: per-dataset usage, per-project timeline, CSV exports.

| page | what |
|---|---|
| ``GET /reports/dataset/{id}`` | who used the dataset when, for which project, how each session ended, grants, exports; every row links to its trace and its on-page check |
| ``GET /reports/project/{code}`` | the project's timeline: requests, grants, sessions, exports |
| ``...?format=csv`` / ``?format=jsonl`` | the same rows (with trace id, block, transaction, batch root, leaf) as CSV or JSON lines |
| ``GET /export.csv`` | the trace list's filter as CSV, next to the JSON lines of ``GET /traces?format=jsonl`` |

Auditors and admins only, like the other pages.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from insitu.identity import Identity
from tracer import reports
from tracer.deps import StoreDep
from tracer.web.pages import AuditorPage, BadFilter, error_page, parse_filters, render

FORMATS = ("html", "csv", "jsonl")


def _download(body: str, media: str, name: str) -> Response:
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


def _format(request: Request) -> str | None:
    f = request.query_params.get("format") or "html"
    return f if f in FORMATS else None


def _rows_out(rows: list[dict], fmt: str, stem: str) -> Response:
    if fmt == "csv":
        return _download(reports.rows_csv(rows), "text/csv; charset=utf-8", f"{stem}.csv")
    return _download(reports.rows_jsonl(rows), "application/x-ndjson", f"{stem}.jsonl")


def _report(request: Request, who: Identity, key: str, pattern, bad: tuple[str, str], build, template: str,
            stem: str) -> Response:
    """One report page: ``key`` checked against ``pattern`` (else the 400 page ``bad``), the report ``build``
    makes of it, as the page ``template`` or its rows as CSV or JSON lines named ``stem``."""
    fmt = _format(request)
    if fmt is None:
        return error_page(request, who, 400, "Unknown format", "format is html, csv or jsonl")
    if not pattern.match(key):
        return error_page(request, who, 400, *bad)
    rep = build(key)
    if fmt != "html":
        return _rows_out(rep["rows"], fmt, stem)
    return render(request, who, template, rep=rep)


router = APIRouter(include_in_schema=False)


@router.get("/reports/dataset/{dataset_id:path}")
def dataset_report(request: Request, dataset_id: str, who: AuditorPage, store: StoreDep):
    return _report(request, who, dataset_id, reports.DATASET_RE,
                   ("Not a dataset id", "A dataset id is letters, digits and . _ : @ + / -."),
                   lambda key: reports.dataset_usage(store, key), "report_dataset.html",
                   f"usage-{dataset_id.replace('/', '_')}")


@router.get("/reports/project/{project}")
def project_report(request: Request, project: str, who: AuditorPage, store: StoreDep):
    return _report(request, who, project, reports.PROJECT_RE,
                   ("Not a project code", "A project code is letters, digits and . _ -."),
                   lambda key: reports.project_timeline(store, key), "report_project.html", f"project-{project}")


@router.get("/export.csv")
def export_csv(request: Request, who: AuditorPage, store: StoreDep):
    try:
        _, query = parse_filters(request.query_params)
    except BadFilter as e:
        return error_page(request, who, 400, "That filter cannot be used", str(e))
    rows = [reports.row(r) for r in reports._all(lambda pos: store.query(**query, after_seq=pos,
                                                                           limit=reports.PAGE))]
    return _download(reports.rows_csv(rows), "text/csv; charset=utf-8", "traces.csv")
