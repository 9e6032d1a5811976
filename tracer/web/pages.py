"""The auditor's web pages: trace list with filters and paging, trace detail with an on-page check.

Routes (under the tracer's ``service_prefix``; the browser logs in through the
hub's OAuth with ``insitu.identity.login_router``, mounted by ``tracer.app``):

| page | what |
|---|---|
| ``GET /`` | traces matching the filters (action, dataset, user pseudonym, caller, time range), cursor paging, a link to the JSON-lines export of the same filter (``GET /traces?format=jsonl``) |
| ``GET /trace/{id}`` | canonical JSON, leaf, proof, batch root, anchor; the check recomputes leaf → proof → root and reads the contract's ``Anchored`` events from the chain (``tracer.verify``) |
| ``GET /static/tracer.css`` | the style sheet |

Only ``auditors`` and ``admins`` see the pages; without a login the browser is
sent to ``/login``, other users get a 403 page. Time filters without a
timezone are read as UTC.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse

from insitu.identity import Identity, OptionalIdentity
from insitu.pages import LoginRequired, PageExit, page_response, page_templates
from insitu.names import Role
from insitu.navigation import platform_nav
from insitu import merkle
from tracer.chain import anchor_events, connect
from tracer.deps import SettingsDep, StoreDep, get_settings, get_store
from insitu.trace import Action, canonical_json, leaf_hash
from tracer.verify import _b32, verify_against_chain

HERE = Path(__file__).resolve().parent
env = page_templates(HERE / "templates")
AUDITORS = (Role.AUDITORS.value,)
PAGE_SIZE = 50
MAX_PAGE = 500
TEXT_FILTERS = {"action": 32, "dataset": 128, "user": 64, "caller": 128}
TIME_FILTERS = ("since", "until")


class BadFilter(ValueError):
    pass


def render(request: Request, who: Identity | None, template: str, status: int = 200, **ctx) -> HTMLResponse:
    prefix = get_settings(request).service_prefix.rstrip("/")
    html = env.get_template(template).render(prefix=prefix, who=who, roles=sorted(who.roles) if who else [],
                                              nav=platform_nav(who.roles, tracer=prefix) if who else [],
                                              path=request.url.path, status=status, **ctx)
    return page_response(html, status)


def error_page(request: Request, who: Identity | None, status: int, title: str, reason: str) -> HTMLResponse:
    return render(request, who, "error.html", status=status, title=title, reason=reason)


def auditor_page(request: Request, who: OptionalIdentity) -> Identity:
    """The identity of an auditor or admin; otherwise the page ends (``insitu.pages.PageExit``) with the login
    redirect or a 403 page."""
    if who is None:
        raise LoginRequired(request, get_settings(request).service_prefix.rstrip("/"))
    if not who.has_role(*AUDITORS):
        raise PageExit(error_page(request, who, 403, "Not for your role",
                                  "The audit trail is for auditors. Ask an administrator if you need access."))
    return who


AuditorPage = Annotated[Identity, Depends(auditor_page)]


def _time(value: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"{name}: not a date and time (use e.g. 2026-01-31T12:00)")
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


def parse_filters(params) -> tuple[dict[str, str], dict[str, Any]]:
    """(the filters as given, cleaned; the keyword arguments of ``TraceStore.query``)."""
    given: dict[str, str] = {}
    query: dict[str, Any] = {}
    for name, longest in TEXT_FILTERS.items():
        value = (params.get(name) or "").strip()
        if not value:
            continue
        if len(value) > longest:
            raise BadFilter(f"{name}: at most {longest} characters")
        if name == "action" and value not in Action.__members__:
            raise BadFilter(f"action: unknown action {value!r}")
        given[name] = query[name] = value
    for name in TIME_FILTERS:
        value = (params.get(name) or "").strip()
        if value:
            t = _time(value, name)
            given[name] = value
            query[name] = t.astimezone(timezone.utc).replace(tzinfo=None)
    return given, query


def export_params(query: dict[str, Any]) -> dict[str, str]:
    """The API's parameters for the same filter (times with their timezone, as the API requires)."""
    out = {k: v for k, v in query.items() if k not in TIME_FILTERS}
    for name in TIME_FILTERS:
        if name in query:
            out[name] = query[name].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def contract_address(request: Request) -> str | None:
    return get_store(request).get_meta("contract_address") or get_settings(request).contract_address


def check(request: Request, rec: dict[str, Any]) -> dict[str, Any]:
    """The on-page check of one record: the verifier's verdict and what it compared.

    ``verify_against_chain`` (the offline verifier) decides: contract code,
    every ``Anchored`` event linked to the previous one, and canonical JSON →
    leaf → proof → root equal to the root of the chain's event for the batch.
    The page also shows the recomputed leaf and root and the chain's event.
    """
    out: dict[str, Any] = {"result": "pending", "errors": [], "event": None}
    canonical = canonical_json(rec["trace"])
    leaf = leaf_hash(canonical)
    out["leaf"] = "0x" + leaf.hex()
    out["leaf_matches"] = out["leaf"] == rec["leaf"]
    anchor = rec.get("anchor")
    if not anchor:
        return out
    try:
        size = anchor["last_seq"] - anchor["first_seq"] + 1
        root = merkle.root_from_proof(leaf, rec["seq"] - anchor["first_seq"], size,
                                      [_b32(h) for h in rec.get("proof") or []])
        out["root"] = "0x" + root.hex()
    except ValueError as e:
        out["root"] = None
        out["errors"].append(f"the proof cannot be applied: {e}")
    address = contract_address(request)
    settings = get_settings(request)
    if not address:
        out["result"] = "unavailable"
        out["errors"].append("the tracer knows no contract address")
        return out
    try:
        report = verify_against_chain([rec], settings.chain_url, address, poa=settings.poa, partial=True)
        events = anchor_events(connect(settings.chain_url, poa=settings.poa), address, first_seq=anchor["first_seq"])
    except Exception as e:  # the chain is unreachable or answers nonsense: no verdict
        out["result"] = "unavailable"
        out["errors"].append(f"the chain could not be read ({type(e).__name__})")
        return out
    if events:
        ev = events[0]
        out["event"] = {"batch": ev.batch, "first_seq": ev.first_seq, "last_seq": ev.last_seq,
                        "root": "0x" + ev.root.hex(), "previous_root": "0x" + ev.previous_root.hex(),
                        "tx_hash": ev.tx_hash, "block_number": ev.block_number}
        for key in ("root", "previous_root", "tx_hash", "block_number"):
            if str(anchor.get(key)).lower() != str(out["event"][key]).lower():
                out["errors"].append(f"the tracer's stored {key.replace('_', ' ')} differs from the chain's")
    out["errors"] += report.errors
    out["result"] = "verified" if report.ok and not out["errors"] else "failed"
    return out


router = APIRouter(include_in_schema=False)


@router.get("/")
def trace_list(request: Request, who: AuditorPage, store: StoreDep):
    params = request.query_params
    try:
        given, query = parse_filters(params)
        cursor = params.get("cursor") or "0"
        if not cursor.isdigit() or len(cursor) > 19:
            raise BadFilter("cursor: not a sequence number")
        limit = params.get("limit") or str(PAGE_SIZE)
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
            raise BadFilter(f"limit: a number of traces from 1 to {MAX_PAGE}")
        limit = int(limit)
    except BadFilter as e:
        return error_page(request, who, 400, "That filter cannot be used", str(e))
    page = store.query(**query, after_seq=int(cursor), limit=limit)
    keep = {**given, **({"limit": limit} if limit != PAGE_SIZE else {})}
    nxt = urlencode({**keep, "cursor": page[-1]["seq"]}) if len(page) == limit else None
    return render(request, who, "traces.html", traces=page, filters=given, actions=list(Action.__members__),
                  next_query=nxt, first_query=urlencode(keep) if int(cursor) else None, limit=limit,
                  export_query=urlencode({**export_params(query), "format": "jsonl"}),
                  anchored_batches=store.anchored_batch_count(), contract=contract_address(request))


@router.get("/trace/{trace_id}")
def trace_detail(request: Request, trace_id: str, who: AuditorPage, store: StoreDep, settings: SettingsDep):
    try:
        tid = str(uuid.UUID(trace_id))
    except ValueError:
        return error_page(request, who, 400, "Not a trace id", "A trace id is a UUID.")
    rec = store.get(tid)
    if rec is None:
        return error_page(request, who, 404, "No such trace", f"The tracer holds no trace {tid}.")
    return render(request, who, "trace.html", rec=rec, t=rec["trace"], result=check(request, rec),
                  canonical=canonical_json(rec["trace"]).decode("utf-8"),
                  pretty=json.dumps(rec["trace"], indent=2, sort_keys=True, ensure_ascii=False),
                  contract=contract_address(request), chain_url=settings.chain_url)


@router.get("/static/tracer.css")
def stylesheet():
    return FileResponse(HERE / "static" / "tracer.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=300"})

