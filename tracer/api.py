"""The tracer's REST API (its routes; ``tracer.app.create_app`` mounts them under ``settings.service_prefix``).

- ``POST /traces`` — platform services only (hub service tokens named in
  ``writer_services``); the trace's ``caller`` must be the posting service.
  202 once stored durably; the same id again → 202 ``duplicate``; the same id
  with other content → 409; a bad trace → 422; a body over 256 KiB → 413.
- ``GET /traces`` — auditors and admins: filters ``user``, ``dataset``,
  ``action``, ``caller``, ``since``, ``until``; cursor paging (``cursor``,
  ``limit``); ``format=jsonl`` streams every match as JSON lines (the export
  the offline verifier reads).
- ``GET /traces/{id}`` — one trace with its proof and anchor.
- ``GET /anchor`` — chain id and contract address (what the verifier needs).
- ``GET /metrics`` — Prometheus; ``GET /health`` (platform services only).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BeforeValidator, ValidationError

from insitu.httpapi import MAX_ID, unprocessable
from insitu.trace import Action, Trace

from .deps import Auditor, BatcherDep, IntakeDep, MetricsDep, PlatformService, StoreDep, WriterService
from .store import Conflict

MAX_BODY = 256 * 1024

router = APIRouter()


def _not_a_number(v):
    if isinstance(v, str) and v.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("a date-time with a timezone (e.g. 2026-01-01T00:00:00Z), not a number")
    return v


# RFC 3339 date-times with an offset; a bare number is refused (not read as a Unix time)
TimeFilter = Annotated[AwareDatetime | None, BeforeValidator(_not_a_number)]


def _utc_naive(t: datetime | None, name: str) -> datetime | None:
    if t is None:
        return None
    try:
        return t.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:
        raise unprocessable(f"{name} is out of range once converted to UTC", ("query", name), input=str(t)) from None


def trace_schemas() -> dict:
    schema = Trace.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "Trace": schema}


TRACE_PAGE = {"type": "object", "required": ["traces", "next_cursor"], "properties": {
    "traces": {"type": "array", "items": {"type": "object"}},
    "next_cursor": {"anyOf": [{"type": "string", "pattern": "^[0-9]+$"}, {"type": "null"}]}}}


def _errors(e: ValidationError) -> list[dict]:
    return [{"type": err.get("type", "value_error"), "loc": ["body", *err.get("loc", ())], "msg": err.get("msg", "")}
            for err in e.errors()]


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPException(413, f"a trace is at most {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"a trace is at most {MAX_BODY} bytes")
    return bytes(body)


def _json(obj) -> Response:
    """Plain JSON values, serialised once (no per-field encoder pass)."""
    return Response(json.dumps(obj, separators=(",", ":"), ensure_ascii=False), media_type="application/json")


@router.post("/traces", status_code=202, openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/Trace"}}}}},
    responses={413: {"description": f"a trace is at most {MAX_BODY} bytes"}})
async def post_trace(request: Request, who: WriterService, intake: IntakeDep, metrics: MetricsDep):
    body = await _read_body(request)
    try:
        trace = Trace.model_validate_json(body)
    except ValidationError as e:
        metrics.traces_rejected.inc()
        raise HTTPException(422, _errors(e))  # FastAPI's list shape
    if trace.caller != who.name:
        metrics.traces_rejected.inc()
        raise HTTPException(403, f"caller {trace.caller!r} is not the posting service {who.name!r}")
    try:
        res = await intake.submit(trace)
    except Exception as e:
        raise HTTPException(503, f"the trace could not be stored: {type(e).__name__}")
    if isinstance(res, Conflict):
        metrics.traces_rejected.inc()
        raise HTTPException(409, f"trace {res} is already stored with different content")
    if res.duplicate:
        metrics.traces_duplicate.inc()
    else:
        metrics.traces_received.inc()
    return {"id": res.id, "seq": res.seq, "status": "duplicate" if res.duplicate else "accepted"}

@router.get("/traces", responses={200: {"description": "a page of traces (json), or every match as JSON lines (jsonl)",
                                    "content": {"application/json": {"schema": TRACE_PAGE},
                                                "application/x-ndjson": {"schema": {"type": "string"}}}}})
def list_traces(
    who: Auditor,
    store: StoreDep,
    user: str | None = Query(None, max_length=64),
    dataset: str | None = Query(None, max_length=128),
    action: Action | None = None,
    caller: str | None = Query(None, max_length=128),
    since: TimeFilter = None,
    until: TimeFilter = None,
    cursor: int | None = Query(None, ge=0, le=MAX_ID, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
    format: Literal["json", "jsonl"] = "json",
):
    filters = dict(user=user, dataset=dataset, action=action.value if action else None, caller=caller,
                   since=_utc_naive(since, "since"), until=_utc_naive(until, "until"))
    after = cursor or 0
    if format == "jsonl":
        def lines():
            pos = after
            while True:
                page = store.query(**filters, after_seq=pos, limit=1000)
                for rec in page:
                    yield json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n"
                if len(page) < 1000:
                    return
                pos = page[-1]["seq"]
        return StreamingResponse(lines(), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": 'attachment; filename="traces.jsonl"'})
    page = store.query(**filters, after_seq=after, limit=limit)
    nxt = str(page[-1]["seq"]) if len(page) == limit else None
    return _json({"traces": page, "next_cursor": nxt})

@router.get("/traces/{trace_id}")
def get_trace(trace_id: uuid.UUID, who: Auditor, store: StoreDep):
    rec = store.get(str(trace_id))
    if rec is None:
        raise HTTPException(404, "no such trace")
    return _json(rec)

@router.get("/anchor")
def anchor_info(who: Auditor, store: StoreDep):
    return {
        "chain_id": store.get_meta("chain_id"),
        "contract_address": store.get_meta("contract_address"),
        "anchored_batches": store.anchored_batch_count(),
    }

@router.get("/metrics", response_class=PlainTextResponse,
       responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus(who: PlatformService, metrics: MetricsDep):
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

@router.get("/health", responses={503: {"description": "anchoring failed for good (the reason is in the body)"}})
def health(who: PlatformService, store: StoreDep, batcher: BatcherDep):
    pending, age, _ = store.pending_stats()
    body = {"pending": pending, "oldest_pending_age_s": age,
            "anchoring": None if batcher is None else ("error" if batcher.fatal else ("ready" if batcher.ready else "starting")),
            "error": batcher.fatal if batcher else None}
    return JSONResponse(body, status_code=503 if batcher is not None and batcher.fatal else 200)

