"""The tracer's HTTP API (FastAPI app factory).

All routes live under ``settings.service_prefix`` (``/services/tracer``, where
the hub proxy routes the tracer service):

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
- ``GET /livez``, ``GET /readyz`` — outside the prefix, without credentials, ``ok`` and nothing else
  (``insitu.probes``): the chart's liveness and readiness probes.
- ``GET /``, ``GET /trace/{id}`` — the auditor's web pages (``tracer.web.pages``),
  logged in through the hub's OAuth (``/login``, ``/oauth_callback``, ``/logout``).
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, AsyncIterator, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BeforeValidator, ValidationError

from insitu.apidocs import install_api_docs
from insitu.httpapi import MAX_ID, install_http_policy, unprocessable
from insitu.probes import database_answers, install_probes

from insitu.identity import HubAuthConfig, Identity, install_hub_auth, login_router, require_roles, require_service
from tracer.batcher import Batcher, BatcherConfig
from tracer.chain import Chain, read_key
from tracer.db import make_engine, upgrade
from tracer.intake import Intake
from tracer.metrics import Metrics
from insitu.names import SERVICE_TRACER
from insitu.trace import Action, Trace
from tracer.settings import ROOT, TracerSettings
from tracer.store import Conflict, TraceStore
from tracer.web.pages import web_router
from tracer.web.reports import reports_router

log = logging.getLogger("tracer")
MAX_BODY = 256 * 1024


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


def _trace_schemas() -> dict:
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


def build_chain(settings: TracerSettings) -> Chain:
    key_file = settings.key_file
    if key_file is None and not settings.private_key and (ROOT / "var" / "chain" / "tracer.key").exists():
        key_file = ROOT / "var" / "chain" / "tracer.key"  # written by `python -m tracer dev-chain`
    key = read_key(key_file, settings.private_key)
    return Chain(settings.chain_url, key, chain_id=settings.chain_id, gas_price=settings.gas_price,
                 gas_limit=settings.gas_limit, poa=settings.poa)


def create_app(settings: TracerSettings | None = None, *, hub_auth: HubAuthConfig | None = None,
               chain: Chain | None = None) -> FastAPI:
    settings = settings or TracerSettings()
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    upgrade(engine)
    store = TraceStore(engine)
    metrics = Metrics(store.pending_stats)
    intake = Intake(store)
    batcher: Batcher | None = None
    if settings.run_batcher:
        batcher = Batcher(
            store, chain or build_chain(settings),
            BatcherConfig(settings.batch_max, settings.batch_wait, settings.receipt_timeout,
                          settings.retry_initial, settings.retry_max),
            metrics=metrics, contract_address=settings.contract_address,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        intake.start()
        if batcher is not None:
            batcher.start()
        try:
            yield
        finally:
            if batcher is not None:
                batcher.stop()
            await intake.stop()
            engine.dispose()

    app = FastAPI(title="insitu tracer", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=f"{settings.service_prefix}/openapi.json")
    app.state.settings, app.state.store, app.state.batcher, app.state.metrics = settings, store, batcher, metrics
    install_hub_auth(app, hub_auth or HubAuthConfig.from_env(
        api_url=settings.hub_api_url or None, default_service_name=SERVICE_TRACER, service_prefix=settings.service_prefix))

    writers = require_service(*settings.writer_services)
    auditors = require_roles("auditors")
    platform = require_service(*settings.platform_services)
    r = APIRouter(prefix=settings.service_prefix.rstrip("/"))

    @r.post("/traces", status_code=202, openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Trace"}}}}},
        responses={413: {"description": f"a trace is at most {MAX_BODY} bytes"}})
    async def post_trace(request: Request, who: Identity = Depends(writers)):
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

    @r.get("/traces", responses={200: {"description": "a page of traces (json), or every match as JSON lines (jsonl)",
                                        "content": {"application/json": {"schema": TRACE_PAGE},
                                                    "application/x-ndjson": {"schema": {"type": "string"}}}}})
    def list_traces(
        user: str | None = Query(None, max_length=64),
        dataset: str | None = Query(None, max_length=128),
        action: Action | None = None,
        caller: str | None = Query(None, max_length=128),
        since: TimeFilter = None,
        until: TimeFilter = None,
        cursor: int | None = Query(None, ge=0, le=MAX_ID, description="next_cursor of the previous page"),
        limit: int = Query(100, ge=1, le=1000),
        format: Literal["json", "jsonl"] = "json",
        who: Identity = Depends(auditors),
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

    @r.get("/traces/{trace_id}")
    def get_trace(trace_id: uuid.UUID, who: Identity = Depends(auditors)):
        rec = store.get(str(trace_id))
        if rec is None:
            raise HTTPException(404, "no such trace")
        return _json(rec)

    @r.get("/anchor")
    def anchor_info(who: Identity = Depends(auditors)):
        return {
            "chain_id": store.get_meta("chain_id"),
            "contract_address": store.get_meta("contract_address"),
            "anchored_batches": store.anchored_batch_count(),
        }

    @r.get("/metrics", response_class=PlainTextResponse,
           responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def prometheus(who: Identity = Depends(platform)):
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @r.get("/health", responses={503: {"description": "anchoring failed for good (the reason is in the body)"}})
    def health(who: Identity = Depends(platform)):
        pending, age, _ = store.pending_stats()
        body = {"pending": pending, "oldest_pending_age_s": age,
                "anchoring": None if batcher is None else ("error" if batcher.fatal else ("ready" if batcher.ready else "starting")),
                "error": batcher.fatal if batcher else None}
        return JSONResponse(body, status_code=503 if batcher is not None and batcher.fatal else 200)

    app.include_router(r)
    # the auditor's web pages (tracer/web), with browser login through the hub's OAuth
    app.include_router(login_router(cookie_path=r.prefix or "/"), prefix=r.prefix)
    app.include_router(web_router(), prefix=r.prefix)
    app.include_router(reports_router(), prefix=r.prefix)
    install_http_policy(app, max_body=MAX_BODY)
    install_api_docs(app, prefix=r.prefix, extra_schemas=_trace_schemas())
    install_probes(app, database_answers(engine), name=SERVICE_TRACER)  # /livez, /readyz for Kubernetes
    return app
