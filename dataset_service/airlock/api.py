"""REST API of the export airlock (under the service prefix).

- ``POST /api/exports`` (researchers) body ``{files: [name...], justification,
  project?, session_id?, replaces?}`` → ``201`` the request, files frozen now;
  ``400 {"detail": {"reason", "refused": [{file, reason}]}}`` when a file may
  not be exported (nothing is stored as a request then).
- ``GET /api/exports?state=&mine=`` → requests the caller may see (their own;
  every request for reviewers and auditors), each with the workspace draft it was
  submitted from (``draft_id``, null when chosen on the page): JupyterLab's exports
  panel follows its drafts with it.
- ``GET /api/users/{name}/exports?project=`` → the states of one user's requests (``request_id``,
  ``draft_id``, ``project``, ``state``, ``approvals``, ``quorum``, ``decided_at``, nothing else), to the
  platform's hub service only (``insitu-hub``: the workspace gateway asks it for its owner's exports
  panel, ``hub/gateway_exports.py``); everyone else gets 403.
- ``GET /api/exports/drafts``, ``POST /api/exports/drafts/{draft_id}`` (the
  researcher): drafts written by ``python -m hub.workspace.export`` in the
  home, and their submission (files whose digest changed since are refused).
- ``GET /api/exports/{id}`` → one request: files with digests, sizes, kinds,
  findings; previews only for reviewers.
- ``POST /api/exports/{id}/reviews`` (reviewers, never the requester) body
  ``{decision: approve|reject|return, reason}``.
- ``GET /api/exports/{id}/files/{file_id}`` → the frozen bytes, only to the
  requester of an approved request; headers ``X-Content-SHA256`` and
  ``Repr-Digest`` carry the digest. Everyone else gets 403, whatever the state.
- ``GET /api/exports/{id}/files/{file_id}/preview.png`` → a downscaled image,
  reviewers only.

Every refused call answers 4xx with a reason and changes nothing; a step the
tracer does not accept answers 503 and changes nothing.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import select
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from insitu.httpapi import RowId

from insitu.identity import CurrentIdentity

from ..deps import DatabaseDep
from ..governance.deps import GovernanceSettingsDep
from .models import ExportRequest
from .deps import AirlockDep, download_response, http_error, preview_response
from .service import AirlockError
from .schemas import DraftOut, ExportOut, ExportStateOut, ExportSummaryOut
from .settings import AirlockSettings
from .states import ExportState
from .tracing import TraceFailed

router = APIRouter(tags=["export airlock"])


SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # service._SAFE_ID
MAX_FILES = AirlockSettings.model_fields["max_files"].default
MAX_JUSTIFICATION = AirlockSettings.model_fields["max_justification"].default
DraftId = Annotated[str, Path(pattern=r"^[0-9a-f]{8,64}$", description="the draft's id (its file name)")]
RefusedFiles = {400: {"description": "Some files cannot be exported (``{detail: {reason, refused: [{file, "
                                     "reason}]}}``), or the session or replaced request is not the caller's"}}


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(min_length=1, max_length=MAX_FILES, json_schema_extra={"uniqueItems": True},
                             description="file names relative to your home folder, each once")
    justification: str = Field(min_length=10, max_length=MAX_JUSTIFICATION, pattern=r"\S[\s\S]{8,}\S",
                               description="what the files are and why they must leave: 10 characters or more")
    project: str | None = Field(None, max_length=128, pattern=SAFE_ID)
    session_id: str | None = Field(None, max_length=128, pattern=SAFE_ID)
    replaces: str | None = Field(None, max_length=64)

    @field_validator("files")
    @classmethod
    def _each_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a file is named twice")
        return v


class FileDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file_id: RowId
    decision: Literal["approve", "reject"]
    comment: str = Field("", max_length=2000, description="required (3 characters or more) to reject a file")


class ReviewIn(BaseModel):
    """A reason is required when rejecting or returning."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"required": ["decision"], "properties": {"decision": {"enum": ["reject", "return"]}}},
        "then": {"required": ["reason"], "properties": {"reason": {"minLength": 3, "pattern": "\\S[\\s\\S]+\\S"}}},
        # a decision on the whole request, or a decision for every file (then the decision may be left out)
        "anyOf": [{"required": ["decision"], "properties": {"decision": {"enum": ["approve", "reject", "return"]}}},
                  {"required": ["files"], "properties": {"files": {"type": "array"}}}],
    })
    decision: Literal["approve", "reject", "return"] | None = Field(
        None, description="on the whole request; or give ``files`` and the decision follows from them")
    reason: str = Field("", max_length=4000)  # the service checks the reason after the reviewer (422)
    files: list[FileDecisionIn] | None = Field(
        None, max_length=500, description="a decision for every file: all approved = approve, all rejected = "
                                          "reject, a mix returns the request (ask again with the approved files)")

    @model_validator(mode="after")
    def _something_decided(self) -> "ReviewIn":
        if self.decision is None and self.files is None:
            raise ValueError("give a decision or a decision for every file")
        if self.files is not None and len({f.file_id for f in self.files}) != len(self.files):
            raise ValueError("a file is decided twice")
        return self


def _summary(view: dict) -> dict:
    keys = ("request_id", "requester", "project", "session_id", "state", "approvals", "quorum", "total_size",
            "draft_id", "created_at", "decided_at")
    out = {k: view[k] for k in keys}
    out["n_files"] = len(view["files"])
    sev = [f["severity"] for f in view["files"] if f["severity"]]
    out["severity"] = next((s for s in ("high", "medium", "info") if s in sev), None)
    return out


@router.post("/api/exports", status_code=201, responses=RefusedFiles, response_model=ExportOut,
             response_model_exclude_unset=True)
def submit_export(body: ExportIn, who: CurrentIdentity, airlock: AirlockDep, db: DatabaseDep):
    try:
        with db.session() as s:
            req = airlock.submit(s, who, files=body.files, justification=body.justification, project=body.project,
                                 session_id=body.session_id, replaces=body.replaces)
            view = airlock.view(req, who)
    except (AirlockError, TraceFailed) as e:
        raise http_error(e)
    return view


@router.get("/api/exports", response_model=list[ExportSummaryOut], response_model_exclude_unset=True)
def list_exports(who: CurrentIdentity, airlock: AirlockDep, db: DatabaseDep, state: ExportState | None = None,
                 mine: bool = False):
    if who.is_service:
        raise HTTPException(403, "export requests are shown to people, not services")
    with db.session() as s:
        return [_summary(airlock.view(r, who)) for r in airlock.listing(s, who, state=state, mine=mine)]


STATE_KEYS = ("request_id", "draft_id", "project", "state", "approvals", "quorum", "decided_at")


@router.get("/api/users/{name}/exports", response_model=list[ExportStateOut], response_model_exclude_unset=True)
def export_states_of(name: Annotated[str, Path(min_length=1, max_length=255)], who: CurrentIdentity,
                     airlock: AirlockDep, db: DatabaseDep, gs: GovernanceSettingsDep,
                     project: Annotated[str | None, Query(max_length=128, pattern=SAFE_ID)] = None):
    """The states of ``name``'s requests (of ``project``), newest first: for the workspace gateway, which
    answers its owner's JupyterLab exports panel; the platform's hub service only."""
    hub_service = gs.hub_service_name
    if not (who.is_service and who.name == hub_service):
        raise HTTPException(403, f"only the platform service {hub_service} may read a user's export states")
    q = select(ExportRequest).where(ExportRequest.requester == name)
    if project is not None:
        q = q.where(ExportRequest.project == project)
    with db.session() as s:
        rows = s.scalars(q.order_by(ExportRequest.created_at.desc()).limit(200)).all()
        return [{k: v[k] for k in STATE_KEYS} for v in (airlock.view(r, who) for r in rows)]


@router.get("/api/exports/drafts", response_model=list[DraftOut], response_model_exclude_unset=True)
def list_drafts(who: CurrentIdentity, airlock: AirlockDep, db: DatabaseDep):
    """Drafts written in the caller's home by ``python -m hub.workspace.export``, not yet submitted."""
    if who.is_service or not who.has_role("researchers"):
        raise HTTPException(403, "only researchers have export drafts")
    try:
        with db.session() as s:
            return airlock.drafts(s, who.name)
    except AirlockError as e:
        raise http_error(e)


@router.post("/api/exports/drafts/{draft_id}", status_code=201, responses=RefusedFiles,
             response_model=ExportOut, response_model_exclude_unset=True)
def submit_draft(draft_id: DraftId, who: CurrentIdentity, airlock: AirlockDep, db: DatabaseDep):
    """Submit a workspace draft: its files are frozen now and must still have the draft's digests."""
    try:
        with db.session() as s:
            req = airlock.submit_draft(s, who, draft_id)
            view = airlock.view(req, who)
    except (AirlockError, TraceFailed) as e:
        raise http_error(e)
    return view


@router.get("/api/exports/{request_id}", response_model=ExportOut, response_model_exclude_unset=True)
def get_export(request_id: str, who: CurrentIdentity, airlock: AirlockDep, db: DatabaseDep):
    try:
        with db.session() as s:
            req = airlock.load(s, request_id)
            if not airlock.can_see(who, req):
                raise AirlockError(403, "not your export request")
            return airlock.view(req, who)
    except AirlockError as e:
        raise http_error(e)


@router.post("/api/exports/{request_id}/reviews", response_model=ExportOut, response_model_exclude_unset=True)
def review_export(request_id: str, body: ReviewIn, who: CurrentIdentity, airlock: AirlockDep,
                  db: DatabaseDep):
    try:
        with db.session() as s:
            files = {f.file_id: (f.decision, f.comment) for f in body.files} if body.files is not None else None
            req = airlock.review(s, request_id, who, decision=body.decision, reason=body.reason, files=files)
            view = airlock.view(req, who)
    except (AirlockError, TraceFailed) as e:
        raise http_error(e)
    return view


@router.get("/api/exports/{request_id}/files/{file_id}")
def download_file(request_id: str, file_id: RowId, who: CurrentIdentity, airlock: AirlockDep,
                  db: DatabaseDep):
    return download_response(airlock, db, request_id, file_id, who)


@router.get("/api/exports/{request_id}/files/{file_id}/preview.png")
def preview_file(request_id: str, file_id: RowId, who: CurrentIdentity, airlock: AirlockDep,
                 db: DatabaseDep):
    return preview_response(airlock, db, request_id, file_id, who)

