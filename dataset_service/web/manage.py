"""The data manager's pages beyond the dataset list: indexing, building a dataset from a catalogue query
(with a live count), a new version, editing metadata, build progress, and invalidation with confirmation.

| page | what |
|---|---|
| ``/manage/index`` | index the lake (button), the run history, the files the last run skipped and why |
| ``/manage/new`` | a dataset from catalogue filters, counted before it is made; ``?previous=<id>``: a new version |
| ``/manage/count`` | JSON: studies and subjects the filters select now (the form's live count) |
| ``/manage/progress`` | JSON: builds and index runs in progress (the pages update themselves) |
| ``/manage/datasets/{id}/edit`` | description, licence, tags, contact (content never changes) |
| ``/manage/datasets/{id}/invalidate`` | what invalidation ends (grants, running workspaces), then confirm |

Data managers (and admins) only; every form carries the CSRF token; a refusal is the page again or an
error page with the 4xx status and the reason, nothing changed.
"""
from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from insitu.identity import Identity
from insitu.trace_client import TraceFailed

from ..api.admin import run_index
from ..builder import create_dataset
from ..catalogue import FILTERS, BadQuery, study_query
from ..deps import BuildsDep, DatabaseDep, SessionDep, SettingsDep
from ..governance.deps import GovernanceDep
from ..governance.models import SessionDataset, WorkSession
from ..governance.service import Governance, aware
from ..models import Dataset, DatasetState, IndexRun, IndexSkip, Study
from ..operations import Conflict, NotFound, transition, update_metadata
from ..schemas import DatasetCreate, DatasetUpdate
from ..selection import RequestError, unsafe_studies
from ..settings import Settings
from ..states import MIN_INVALIDATION_REASON
from . import views
from .deps import (ManagedDataset, ManagedDatasetForm, ManagerForm, ManagerJson, ManagerPage, done,
                   error_page, prefix_of, render)

router = APIRouter(include_in_schema=False)
META = ("name", "description", "license", "tags", "contact")


def _pydantic_reason(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts)


def _tags(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


# --- indexing ------------------------------------------------------------------------------------
@router.get("/manage/index", response_class=HTMLResponse)
def index_page(request: Request, who: ManagerPage, s: SessionDep):
    runs = []
    for r in s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(20)):
        st = r.stats or {}
        runs.append({"id": r.id, "started_at": aware(r.started_at), "finished_at": aware(r.finished_at),
                     "by": r.requested_by or "command line", "error": st.get("error"),
                     "files": st.get("files_seen"), "hashed": st.get("files_hashed"),
                     "studies": st.get("studies"), "subjects": st.get("subjects"),
                     "skipped": len(st.get("skipped") or []), "seconds": st.get("seconds")})
    skips = s.scalars(select(IndexSkip).order_by(IndexSkip.path).limit(1000)).all()
    n_skips = s.scalar(select(func.count()).select_from(IndexSkip)) or 0
    return render(request, who, "manage_index.html", runs=runs, running=any(not r["finished_at"] for r in runs),
                  skips=[{"path": k.path, "reason": k.reason, "study": k.study_id, "link": k.link} for k in skips],
                  n_skips=n_skips)


@router.post("/manage/index")
def start_index(request: Request, who: ManagerForm, s: SessionDep, settings: SettingsDep, db: DatabaseDep,
                builds: BuildsDep):
    if s.scalar(select(func.count()).select_from(IndexRun).where(IndexRun.finished_at.is_(None))):
        return error_page(request, who, 409, "Indexing is already running",
                          "An indexing run has not finished yet: wait for it, its result appears on this page.",
                          f"{prefix_of(request)}/manage/index")
    run_index(settings, db, builds, who.name)
    return done(request, "/manage/index", "indexing")


# --- building from a catalogue query -------------------------------------------------------------
def _filters(params) -> dict:
    return {k: str(params.get(k, "") or "")[:64] for k in FILTERS}


def selection_count(s: Session, settings: Settings, filters: dict) -> dict:
    """Studies and subjects the filters select now, and the unsafe studies a build would leave out."""
    ids = list(s.scalars(study_query(filters).with_only_columns(Study.id)))
    unsafe = unsafe_studies(s, settings, ids) if ids else {}
    kept = [i for i in ids if i not in unsafe]
    return {"studies": len(kept), "subjects": len({i.split("/")[0] for i in kept}), "left_out": len(unsafe),
            "too_many": len(kept) > settings.max_studies_per_request, "max": settings.max_studies_per_request}


@router.get("/manage/count")
def count(request: Request, who: ManagerJson, s: SessionDep, settings: SettingsDep):
    try:
        return selection_count(s, settings, _filters(request.query_params))
    except BadQuery as e:
        return JSONResponse({"error": str(e)}, status_code=422)


def _new_form(request: Request, who: Identity, s: Session, settings: Settings, *, filters: dict, meta: dict,
              previous: Dataset | None, error: str | None = None, status: int = 200) -> HTMLResponse:
    counted, count_error = None, None
    try:
        counted = selection_count(s, settings, filters)
    except BadQuery as e:
        count_error = str(e)
    return render(request, who, "manage_new.html", status=status, filters=filters, meta=meta, error=error,
                  counted=counted, count_error=count_error, labels=FILTERS,
                  previous=({"id": previous.id, "name": previous.name, "version": previous.version}
                            if previous else None))


@router.get("/manage/new", response_class=HTMLResponse)
def new_page(request: Request, who: ManagerPage, s: SessionDep, settings: SettingsDep, previous: str = ""):
    prev = s.get(Dataset, previous[:64]) if previous else None
    if previous and prev is None:
        return error_page(request, who, 404, "No such dataset", f"There is no dataset {previous[:64]!r} to follow.",
                          f"{prefix_of(request)}/manage")
    meta = {"name": "", "description": "", "license": "", "tags": "", "contact": ""}
    if prev is not None:  # a new version starts from its predecessor's metadata
        meta = {"name": prev.name, "description": prev.description or "", "license": prev.license or "",
                "tags": ", ".join(prev.tags or []), "contact": prev.contact or ""}
    for k in META:
        if request.query_params.get(k):
            meta[k] = request.query_params[k][:10000]
    return _new_form(request, who, s, settings, filters=_filters(request.query_params), meta=meta, previous=prev)


@router.post("/manage/new")
async def create_from_query(request: Request, who: ManagerForm, s: SessionDep, settings: SettingsDep,
                            db: DatabaseDep, builds: BuildsDep):
    form = await request.form()

    filters = _filters(form)
    meta = {k: str(form.get(k, ""))[:10000] for k in META}
    previous_id = str(form.get("previous_id", ""))[:64] or None
    prev = s.get(Dataset, previous_id) if previous_id else None

    def again(reason: str, status: int):
        return _new_form(request, who, s, settings, filters=filters, meta=meta, previous=prev, error=reason,
                         status=status)

    query = {k: v for k, v in filters.items() if v}
    if not query and form.get("all_studies") != "yes":
        return again("Choose at least one filter, or tick “every study of the catalogue”.", 422)
    try:
        body = DatasetCreate(name=meta["name"], description=meta["description"], license=meta["license"],
                             tags=_tags(meta["tags"]), contact=meta["contact"], previous_id=previous_id,
                             **({"query": query} if query else {"all_studies": True}))
    except ValidationError as e:
        return again(_pydantic_reason(e), 422)
    try:
        dataset_id = create_dataset(settings, db, actor=who.name, **body.model_dump(mode="json"))
    except RequestError as e:
        return again(str(e), e.status)
    except TraceFailed:  # the tracer refused or is down: nothing was made
        return again("The dataset could not be recorded in the audit trail, so nothing was made. "
                     "Try again later.", 503)
    builds.submit(dataset_id)
    return done(request, "/manage", "building", dataset=dataset_id)


# --- progress (the pages poll it) ------------------------------------------------------------------
@router.get("/manage/progress")
def progress(request: Request, who: ManagerJson, s: SessionDep):
    building = []
    for d in s.scalars(select(Dataset).where(Dataset.state == DatasetState.building)):
        total, n = d.progress_total or 0, d.progress_done or 0
        building.append({"id": d.id, "phase": d.build_phase, "done": n, "total": total,
                         "percent": int(100 * n / total) if total else 0})
    indexing = bool(s.scalar(select(func.count()).select_from(IndexRun).where(IndexRun.finished_at.is_(None))))
    return {"building": building, "indexing": indexing}


# --- metadata ------------------------------------------------------------------------------------------
def _edit_form(request, who, ds: Dataset, values: dict, error: str | None = None, status: int = 200):
    return render(request, who, "manage_edit.html", status=status, error=error, values=values,
                  ds={"id": ds.id, "name": ds.name, "version": ds.version, "state": views.state_value(ds.state)})


@router.get("/manage/datasets/{dataset_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, who: ManagerPage, ds: ManagedDataset, s: SessionDep):
    values = {"description": ds.description or "", "license": ds.license or "", "tags": ", ".join(ds.tags or []),
              "contact": ds.contact or ""}
    return _edit_form(request, who, ds, values)


@router.post("/manage/datasets/{dataset_id}/edit")
def edit(request: Request, who: ManagerForm, ds: ManagedDatasetForm, s: SessionDep, settings: SettingsDep,
         db: DatabaseDep, description: str = Form(""), license: str = Form(""), tags: str = Form(""),
         contact: str = Form("")):

    values = {"description": description[:10000], "license": license[:200], "tags": tags[:2000],
              "contact": contact[:255]}
    try:
        body = DatasetUpdate(description=description, license=license, tags=_tags(tags), contact=contact)
    except ValidationError as e:
        return _edit_form(request, who, ds, values, _pydantic_reason(e), 422)
    s.rollback()  # the operation commits in its own session
    try:
        update_metadata(settings, db, ds.id, body.model_dump(exclude_unset=True), who.name)
    except NotFound as e:
        return error_page(request, who, 404, "No such dataset", str(e), f"{prefix_of(request)}/manage")
    except Conflict as e:
        return _edit_form(request, who, ds, values, str(e), 409)
    except TraceFailed:  # the tracer refused or is down: nothing changed
        return _edit_form(request, who, ds, values, "The change could not be recorded in the audit trail, "
                                                      "so nothing was changed. Try again later.", 503)
    return done(request, f"/datasets/{ds.id}", "edited")


# --- invalidation: say what it ends, confirm -----------------------------------------------------------
def invalidation_effects(s: Session, gov: Governance, dataset_id: str) -> dict:
    grants = [{"id": g.id, "project": g.project, "valid_until": aware(g.valid_until)}
              for g, _d in gov.grants_in_force(s, dataset_ids=[dataset_id])]
    sessions = [{"id": w.id, "user": w.user, "project": w.project, "opened_at": aware(w.opened_at)}
                for w in s.scalars(select(WorkSession).join(SessionDataset, SessionDataset.session_id == WorkSession.id)
                                   .where(SessionDataset.dataset_id == dataset_id, WorkSession.closed_at.is_(None))
                                   .order_by(WorkSession.opened_at))]
    return {"grants": grants, "sessions": sessions}


@router.get("/manage/datasets/{dataset_id}/invalidate", response_class=HTMLResponse)
def invalidate_page(request: Request, who: ManagerPage, ds: ManagedDataset, s: SessionDep, gov: GovernanceDep,
                    reason: str = ""):
    return _invalidate_form(request, who, s, gov, ds, reason)


def _invalidate_form(request, who, s, gov, ds: Dataset, reason: str, error: str | None = None, status: int = 200):
    return render(request, who, "manage_invalidate.html", status=status, reason=reason[:500], error=error,
                  ds={"id": ds.id, "name": ds.name, "version": ds.version, "state": views.state_value(ds.state)},
                  effects=invalidation_effects(s, gov, ds.id))


@router.post("/manage/datasets/{dataset_id}/invalidate")
def invalidate(request: Request, who: ManagerForm, ds: ManagedDatasetForm, s: SessionDep, gov: GovernanceDep,
               settings: SettingsDep, db: DatabaseDep, reason: str = Form("")):

    back = f"{prefix_of(request)}/manage"

    def again(error: str, status: int) -> HTMLResponse:
        return _invalidate_form(request, who, s, gov, ds, reason, error, status)

    if len(reason.strip()) < MIN_INVALIDATION_REASON:
        return again(f"Say why: a reason of at least {MIN_INVALIDATION_REASON} characters is required to "
                     "invalidate.", 422)
    s.rollback()  # the operation commits in its own session
    try:
        transition(settings, db, ds.id, DatasetState.invalidated, who.name, reason.strip()[:500])
    except NotFound as e:
        return error_page(request, who, 404, "No such dataset", str(e), back)
    except Conflict as e:
        return again(str(e), 409)
    except TraceFailed:  # the tracer refused or is down: nothing changed
        return again("The invalidation could not be recorded in the audit trail, so nothing was changed. "
                     "Try again later.", 503)
    return done(request, "/manage", "state")
