"""Catalogue search over the indexed studies (data managers and admins)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import func, select

from insitu.httpapi import Offset, limit_query, unprocessable

from ..catalogue import _VALUE, FILTERS, BadQuery, study_query
from ..deps import MANAGERS, Identity, SessionDep, SettingsDep, require_roles
from ..models import Study
from ..paths import NAME_RE, UnsafePath, check_study_id
from ..schemas import Page, StudyDetail, StudyOut

router = APIRouter(prefix="/api/catalogue", tags=["catalogue"])
Value = Annotated[str | None, Query(pattern=_VALUE.pattern)]
Name = Annotated[str, Path(pattern=NAME_RE.pattern)]


@router.get("/filters", summary="Filters accepted by catalogue searches and dataset queries")
def filters(_: Identity = Depends(require_roles(*MANAGERS))) -> dict[str, str]:
    return FILTERS


@router.get("/studies", response_model=Page[StudyOut], summary="Search studies with filters and paging")
def search(s: SessionDep, settings: SettingsDep, subject: Value = None, modality: Value = None,
           body_part: Value = None, cancer_type: Value = None, sex: Value = None, age_group: Value = None,
           date_from: dt.date | None = None, date_to: dt.date | None = None, limit: limit_query(50, 500) = 50,
           offset: Offset = 0, _: Identity = Depends(require_roles(*MANAGERS))):
    if limit > settings.max_page_size:
        raise unprocessable(f"limit must be at most {settings.max_page_size}", ("query", "limit"), input=limit)
    try:
        q = study_query(dict(subject=subject, modality=modality, body_part=body_part, cancer_type=cancer_type,
                             sex=sex, age_group=age_group, date_from=date_from and date_from.isoformat(),
                             date_to=date_to and date_to.isoformat()))
    except BadQuery as e:
        raise unprocessable(str(e), ("query",)) from None
    total = s.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
    items = s.scalars(q.limit(limit).offset(offset)).all()
    return Page[StudyOut](total=total, limit=limit, offset=offset,
                          items=[StudyOut.model_validate(x) for x in items])


@router.get("/studies/{subject}/{study}", response_model=StudyDetail, summary="One study with its series")
def get_study(subject: Name, study: Name, s: SessionDep, _: Identity = Depends(require_roles(*MANAGERS))):
    try:
        check_study_id(f"{subject}/{study}")
    except UnsafePath as e:
        raise unprocessable(str(e), ("path",)) from None
    st = s.get(Study, f"{subject}/{study}")
    if st is None:
        raise HTTPException(404, f"no study {subject}/{study} in the catalogue")
    return StudyDetail.model_validate(st)
