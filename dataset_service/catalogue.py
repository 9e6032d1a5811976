"""Catalogue queries over studies (used by the API, the CLI and dataset creation)."""
from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Select, func, or_, select

from .models import Study, Subject

FILTERS = {
    "subject": "subject id (exact)",
    "modality": "modality contained in the study (CT, MR, ...)",
    "body_part": "body part examined (CHEST, HEAD, ...)",
    "cancer_type": "cancer type from the eForm (lung, breast, ...)",
    "sex": "sex from the eForm (F, M)",
    "age_group": "age group from the eForm (e.g. 60-69)",
    "date_from": "first study date (YYYY-MM-DD, inclusive)",
    "date_to": "last study date (YYYY-MM-DD, inclusive)",
}
_VALUE = re.compile(r"^[A-Za-z0-9 ._+-]{1,64}$")


class BadQuery(ValueError):
    pass


def validate(filters: dict) -> dict:
    out = {}
    for k, v in (filters or {}).items():
        if v is None or v == "":
            continue
        if k not in FILTERS:
            raise BadQuery(f"unknown catalogue filter {k!r}; known: {', '.join(FILTERS)}")
        v = str(v)
        if k in ("date_from", "date_to"):
            try:
                dt.date.fromisoformat(v)
            except ValueError:
                raise BadQuery(f"{k} must be a date YYYY-MM-DD, got {v!r}") from None
        elif not _VALUE.match(v):
            raise BadQuery(f"invalid value for {k}: {v!r}")
        out[k] = v
    return out


def study_query(filters: dict) -> Select:
    f = validate(filters)
    q = select(Study)
    if {"cancer_type", "sex", "age_group"} & f.keys():
        q = q.join(Subject, Subject.id == Study.subject_id)
    if "subject" in f:
        q = q.where(Study.subject_id == f["subject"])
    if "modality" in f:
        m = f["modality"].upper()
        q = q.where(or_(Study.modalities == m, Study.modalities.like(f"{m},%"), Study.modalities.like(f"%,{m}"),
                        Study.modalities.like(f"%,{m},%")))
    if "body_part" in f:
        q = q.where(func.upper(Study.body_part) == f["body_part"].upper())
    if "cancer_type" in f:
        q = q.where(func.lower(Subject.cancer_type) == f["cancer_type"].lower())
    if "sex" in f:
        q = q.where(func.upper(Subject.sex) == f["sex"].upper())
    if "age_group" in f:
        q = q.where(Subject.age_group == f["age_group"])
    if "date_from" in f:
        q = q.where(Study.study_date >= f["date_from"])
    if "date_to" in f:
        q = q.where(Study.study_date <= f["date_to"])
    return q.order_by(Study.id)
