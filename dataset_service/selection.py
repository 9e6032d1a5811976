"""Which studies a dataset request selects, and which it must leave out.

``resolve_studies`` turns a request (named studies, a catalogue query, or all
studies) into study ids. Unsafe studies (``unsafe_studies``: a folder that
leaves the lake, or one holding a symbolic link, as the indexer recorded in
``index_skips``) refuse a request that names them, with the reason; a query or
``all_studies`` leaves them out and reports them, so one bad study never stops
a dataset being made from the rest.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from .catalogue import study_query
from .models import IndexSkip, Study
from .paths import UnsafePath, check_study_id, resolve_study
from .settings import Settings


class RequestError(ValueError):
    """A create request that cannot be honoured (the API answers 4xx with this reason)."""

    def __init__(self, reason: str, status: int = 422):
        super().__init__(reason)
        self.status = status


def unsafe_studies(s, settings: Settings, ids: list[str]) -> dict[str, str]:
    """Studies that no dataset may hold, with the reason: a study whose folder leaves the lake, or that
    holds a symbolic link (the indexer names every link it met in ``index_skips``; what a link points
    at is outside the study's digest, so the study is not what the manifest would say it is)."""
    out: dict[str, str] = {}
    lake = Path(settings.lake_dir)
    lake_real = os.path.realpath(lake)
    for sid in ids:
        try:
            resolve_study(lake, sid, lake_real)
        except UnsafePath as e:
            out[sid] = str(e)
    wanted = set(ids)
    for path, study_id, reason in s.execute(
            select(IndexSkip.path, IndexSkip.study_id, IndexSkip.reason).where(IndexSkip.link.is_(True))
            .where(IndexSkip.study_id.is_not(None)).order_by(IndexSkip.path)):
        if study_id in wanted and study_id not in out:
            out[study_id] = f"study {study_id!r} holds {path[len(study_id) + 1:]!r}, a {reason}: left out as unsafe"
    return out


def resolve_studies(s, settings: Settings, *, study_ids: list[str] | None, query: dict | None,
                    all_studies: bool) -> tuple[list[str], list[dict]]:
    """The studies of a selection and the ones left out of it: ``(ids, [{study, reason}])``.

    Studies named one by one must all be safe (an unsafe one refuses the request with its reason);
    a query or ``all_studies`` leaves unsafe studies out and reports them.
    """
    chosen = [x is not None and x is not False for x in (study_ids, query, all_studies or None)]
    if sum(chosen) != 1:
        raise RequestError("give exactly one of: study_ids, query, all_studies")
    if study_ids is not None:
        if len(study_ids) > settings.max_studies_per_request:
            raise RequestError(f"too many studies ({len(study_ids)} > {settings.max_studies_per_request})", 413)
        ids = []
        seen = set()
        for sid in study_ids:
            try:
                check_study_id(sid)
            except UnsafePath as e:
                raise RequestError(str(e), 422) from None
            if sid in seen:
                raise RequestError(f"study {sid!r} listed twice")
            seen.add(sid)
            ids.append(sid)
        known = set()
        for i in range(0, len(ids), 500):
            known.update(s.scalars(select(Study.id).where(Study.id.in_(ids[i:i + 500]))))
        missing = [x for x in ids if x not in known]
        if missing:
            raise RequestError(f"unknown study id(s) (not in the catalogue): {', '.join(missing[:10])}", 404)
    elif query is not None:
        ids = list(s.scalars(study_query(query).with_only_columns(Study.id)))
    else:
        ids = list(s.scalars(select(Study.id).order_by(Study.id)))
    if not ids:
        raise RequestError("the selection holds no study", 409)  # valid, but not in the catalogue now
    if len(ids) > settings.max_studies_per_request:
        raise RequestError(f"too many studies ({len(ids)} > {settings.max_studies_per_request})", 413)
    unsafe = unsafe_studies(s, settings, ids)
    if unsafe and study_ids is not None:
        raise RequestError("; ".join(unsafe[x] for x in ids if x in unsafe)[:2000], 422)
    left_out = [{"study": x, "reason": unsafe[x]} for x in sorted(unsafe)]
    ids = [x for x in ids if x not in unsafe]
    if not ids:
        raise RequestError("the selection holds no safe study: " + "; ".join(unsafe.values())[:1500], 409)
    return sorted(ids), left_out
