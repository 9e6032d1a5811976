"""What the pages show, as plain dicts built from the database (no HTTP here)."""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..governance.models import AccessRequest, Grant
from ..governance.rules import PENDING, REQUESTABLE_DATASET_STATES, RequestState
from ..governance.service import Governance, aware
from ..models import Dataset, DatasetEvent, DatasetStudy, Study, Subject
from ..states import TRANSITIONS
from . import history

CATALOGUE_STATES = ("released", "published")
FACETS = ("modality", "body_part", "cancer_type", "license")


def human_size(n: int | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def state_value(st) -> str:
    return st.value if hasattr(st, "value") else str(st)


def dataset_facets(s: Session, ds_ids: list[str]) -> dict[str, dict[str, Counter]]:
    """Per dataset: studies counted by modality, body part and cancer type."""
    out: dict[str, dict[str, Counter]] = {i: {"modality": Counter(), "body_part": Counter(),
                                              "cancer_type": Counter()} for i in ds_ids}
    if not ds_ids:
        return out
    rows = s.execute(
        select(DatasetStudy.dataset_id, Study.modalities, Study.body_part, Subject.cancer_type)
        .join(Study, Study.id == DatasetStudy.study_id)
        .join(Subject, Subject.id == Study.subject_id, isouter=True)
        .where(DatasetStudy.dataset_id.in_(ds_ids))).all()
    for ds_id, modalities, body_part, cancer in rows:
        f = out[ds_id]
        for m in filter(None, (modalities or "").split(",")):
            f["modality"][m] += 1
        f["body_part"][(body_part or "unknown").upper()] += 1
        f["cancer_type"][(cancer or "unknown").lower()] += 1
    return out


def catalogue(s: Session, *, q: str = "", modality: str = "", body_part: str = "", cancer_type: str = "",
              license: str = "") -> dict:
    base = select(Dataset).where(Dataset.state.in_(CATALOGUE_STATES)).order_by(Dataset.name, Dataset.version.desc())
    all_ds = list(s.scalars(base))
    facets = dataset_facets(s, [d.id for d in all_ds])
    versions = Counter(d.name for d in all_ds)
    items = []
    totals = {k: Counter() for k in FACETS}
    for d in all_ds:
        f = facets[d.id]
        text = " ".join([d.name, d.description or "", " ".join(d.tags or [])]).lower()
        if q and not all(word in text for word in q.lower().split()):
            continue
        if modality and modality not in f["modality"]:
            continue
        if body_part and body_part.upper() not in f["body_part"]:
            continue
        if cancer_type and cancer_type.lower() not in f["cancer_type"]:
            continue
        if license and d.license != license:
            continue
        for k in ("modality", "body_part", "cancer_type"):
            for v in f[k]:
                totals[k][v] += 1
        totals["license"][d.license or "unspecified"] += 1
        items.append({
            "id": d.id, "name": d.name, "version": d.version, "description": d.description, "license": d.license,
            "tags": d.tags or [], "state": state_value(d.state), "n_studies": d.n_studies,
            "n_subjects": len({st.study_id.split("/")[0] for st in d.studies}), "n_files": d.n_files,
            "size": human_size(d.size), "modality": dict(f["modality"].most_common()),
            "body_part": dict(f["body_part"].most_common()), "cancer_type": dict(f["cancer_type"].most_common()),
            "n_versions": versions[d.name],
        })
    return {"items": items, "total": len(all_ds),
            "facets": {k: sorted(v.items(), key=lambda kv: (-kv[1], kv[0])) for k, v in totals.items()}}


def manifest_summary(datasets_dir: Path, ds: Dataset) -> dict | None:
    """Series and file counts read from the dataset's manifest.json, when the tree exists."""
    path = Path(datasets_dir) / ds.id / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    series = [se for st in m.get("studies", []) for se in st.get("series", [])]
    return {"format": m.get("format", ""), "merkle_root": m.get("merkle_root", ""), "n_studies": len(m.get("studies", [])),
            "n_series": len(series), "n_files": sum(len(se.get("files", [])) for se in series),
            "size": human_size(sum(f.get("size", 0) for se in series for f in se.get("files", [])))}


def dataset_page(s: Session, gov: Governance, datasets_dir: Path, ds: Dataset) -> dict:
    f = dataset_facets(s, [ds.id])[ds.id]
    siblings = s.scalars(select(Dataset).where(Dataset.name == ds.name).order_by(Dataset.version.desc())).all()
    events = s.scalars(select(DatasetEvent).where(DatasetEvent.dataset_id == ds.id).order_by(DatasetEvent.seq)).all()
    return {
        "id": ds.id, "name": ds.name, "version": ds.version, "description": ds.description, "license": ds.license,
        "tags": ds.tags or [], "contact": ds.contact, "state": state_value(ds.state), "gid": ds.gid,
        "merkle_root": ds.merkle_root or "", "n_studies": ds.n_studies, "n_files": ds.n_files,
        "size": human_size(ds.size), "created_at": aware(ds.created_at), "created_by": ds.created_by,
        "n_subjects": len({st.study_id.split("/")[0] for st in ds.studies}),
        "modality": f["modality"].most_common(), "body_part": f["body_part"].most_common(),
        "cancer_type": f["cancer_type"].most_common(),
        "manifest": manifest_summary(datasets_dir, ds),
        "requestable": state_value(ds.state) in REQUESTABLE_DATASET_STATES,
        "report": {"left_out_studies": (ds.report or {}).get("left_out_studies", []),
                   "left_out_files": (ds.report or {}).get("left_out_files", [])},
        "versions": [{"id": v.id, "version": v.version, "state": state_value(v.state)} for v in siblings
                     if state_value(v.state) in CATALOGUE_STATES + ("invalidated",) or v.id == ds.id],
        "events": [{"at": aware(e.at), "actor": e.actor, "action": e.action, "detail": _event_words(e)}
                   for e in events],
    }


def _event_words(e: DatasetEvent) -> str:
    d = e.detail or {}
    if e.action == "transition":
        return f"{d.get('from', '?')} → {d.get('to', '?')}" + (f" ({d['reason']})" if d.get("reason") else "")
    if e.action == "update":
        return "metadata: " + ", ".join(d.get("fields", []))
    return ", ".join(f"{k}: {v}" for k, v in d.items() if isinstance(v, (str, int)))[:200]


def request_row(r: AccessRequest, gov: Governance, names: dict[str, str]) -> dict:
    current = [v for v in r.votes if v.round == r.round]
    return {
        "id": r.id, "dataset_id": r.dataset_id, "dataset": names.get(r.dataset_id, r.dataset_id),
        "project": r.project, "requester": r.requester, "purpose": r.purpose, "intended_use": r.intended_use,
        "duration_days": r.duration_days, "state": r.state.value, "round": r.round,
        "created_at": aware(r.created_at), "updated_at": aware(r.updated_at),
        "decided_at": aware(r.decided_at),
        "approvals": sum(1 for v in current if v.decision.value == "approve"),
        "rejections": sum(1 for v in current if v.decision.value == "reject"),
        "votes": [{"reviewer": v.reviewer, "decision": v.decision.value, "reason": v.reason, "round": v.round,
                   "at": aware(v.at)} for v in r.votes],
        "events": [{"actor": e.actor, "action": e.action, "detail": e.detail, "at": aware(e.at)} for e in r.events],
        "pending": r.state in PENDING, "waiting_for_requester": r.state == RequestState.changes_requested,
        "grant_id": r.grant.id if r.grant else None,
        "extends_grant_id": r.extends_grant_id,
        "decision_reason": "" if r.state in PENDING else history.decision_reason(r),
        # from round 2 on: what the committee asked for last round, and what the requester changed
        "last_round": _last_round(r) if r.round > 1 else None,
    }


def _last_round(r: AccessRequest) -> dict:
    rounds = history.rounds_of(r)
    return {"asked": rounds[-2]["changes_asked"] if len(rounds) > 1 else [], "diff": rounds[-1]["diff"]}


def grant_row(g: Grant, gov: Governance, names: dict[str, str]) -> dict:
    until = aware(g.valid_until)
    now = gov.now()
    return {
        "id": g.id, "dataset_id": g.dataset_id, "dataset": names.get(g.dataset_id, g.dataset_id),
        "project": g.project, "valid_from": aware(g.valid_from), "valid_until": until,
        "days_left": max(0, (until - now).days), "status": gov.grant_status(g), "granted_by": g.granted_by or [],
        "revoked_at": aware(g.revoked_at), "revoked_by": g.revoked_by, "revoke_reason": g.revoke_reason,
        "request_id": g.request_id,
    }


def dataset_names(s: Session) -> dict[str, str]:
    return {i: f"{n} v{v}" for i, n, v in s.execute(select(Dataset.id, Dataset.name, Dataset.version))}


def my_requests(s: Session, gov: Governance, user: str) -> list[dict]:
    names = dataset_names(s)
    rows = s.scalars(select(AccessRequest).where(AccessRequest.requester == user).order_by(AccessRequest.id.desc()))
    return [request_row(r, gov, names) for r in rows]


def project_grants(s: Session, gov: Governance, projects) -> list[dict]:
    names = dataset_names(s)
    rows = s.scalars(select(Grant).where(Grant.project.in_(sorted(projects))).order_by(Grant.valid_until.desc()))
    return [grant_row(g, gov, names) for g in rows]


def project_standing(s: Session, gov: Governance, dataset_id: str, projects) -> dict:
    """For the dataset page: per project of the user, a grant in force, a pending request, or nothing yet."""
    names = dataset_names(s)
    held = {}
    for g, _d in gov.grants_in_force(s, projects=sorted(projects), dataset_ids=[dataset_id]):
        held.setdefault(g.project, grant_row(g, gov, names))
    pend = {}
    for r in s.scalars(select(AccessRequest).where(AccessRequest.dataset_id == dataset_id,
                                                   AccessRequest.project.in_(sorted(projects)),
                                                   AccessRequest.state.in_(list(PENDING)))
                       .order_by(AccessRequest.id)):
        pend.setdefault(r.project, request_row(r, gov, names))
    return {"held": [held[p] for p in sorted(held)], "pending": [pend[p] for p in sorted(pend)],
            "free": [p for p in sorted(projects) if p not in held and p not in pend]}


def dac_queue(s: Session, gov: Governance) -> dict:
    names = dataset_names(s)
    pending = s.scalars(select(AccessRequest).where(AccessRequest.state.in_(list(PENDING)))
                        .order_by(AccessRequest.created_at)).all()
    decided = s.scalars(select(AccessRequest).where(AccessRequest.state.notin_(list(PENDING)))
                        .order_by(AccessRequest.decided_at.desc()).limit(50)).all()
    grants = [grant_row(g, gov, names) for g in s.scalars(select(Grant).order_by(Grant.valid_until))]
    return {"pending": [request_row(r, gov, names) for r in pending],
            "decided": [request_row(r, gov, names) for r in decided],
            "active_grants": [g for g in grants if g["status"] == "active"],
            "ended_grants": [g for g in grants if g["status"] != "active"][-20:]}


def manager_datasets(s: Session) -> list[dict]:
    out = []
    for d in s.scalars(select(Dataset).order_by(Dataset.created_at.desc())):
        total, done = d.progress_total or 0, d.progress_done or 0
        out.append({
            "id": d.id, "name": d.name, "version": d.version, "state": state_value(d.state),
            "build_phase": d.build_phase, "progress_done": done, "progress_total": total,
            "percent": int(100 * done / total) if total else (100 if state_value(d.state) != "building" else 0),
            "n_studies": d.n_studies, "size": human_size(d.size), "error": d.error, "gid": d.gid,
            "created_at": aware(d.created_at), "created_by": d.created_by,
            "transitions": sorted(t.value for t in TRANSITIONS.get(d.state, ())),
            "left_out_studies": len((d.report or {}).get("left_out_studies", [])),
            "left_out_files": len((d.report or {}).get("left_out_files", [])),
        })
    return out


def search_filter_options(s: Session) -> dict:
    licenses = sorted({lic for (lic,) in s.execute(select(Dataset.license).where(
        Dataset.state.in_(CATALOGUE_STATES))) if lic})
    return {"licenses": licenses}


def fmt_date(t: dt.datetime | None) -> str:
    return t.strftime("%d %b %Y") if t else "—"


def fmt_time(t: dt.datetime | None) -> str:
    return t.strftime("%d %b %Y, %H:%M UTC") if t else "—"


