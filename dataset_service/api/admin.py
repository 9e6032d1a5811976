"""Indexing the lake through the API (data managers and admins)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException

from insitu.clock import utcnow
from insitu.httpapi import RowId

from ..builder import BuildRunner
from ..db import Database
from ..deps import MANAGERS, BuildsDep, DatabaseDep, Identity, SessionDep, SettingsDep, require_roles
from ..indexer import index_lake
from ..models import IndexRun
from ..schemas import IndexRunOut
from ..settings import Settings

router = APIRouter(prefix="/api/index-runs", tags=["indexing"])
log = logging.getLogger(__name__)


def run_index(settings: Settings, db: Database, builds: BuildRunner, actor: str) -> IndexRunOut:
    """Record an indexing run (so it can be polled at once) and index the lake in the background (in the
    build runner's pool)."""
    with db.session() as s:
        run = IndexRun(requested_by=actor)
        s.add(run)
        s.flush()
        out = IndexRunOut.model_validate(run)

    def job():
        try:
            index_lake(settings, db, progress=False, requested_by=actor, run_id=out.id)
        except Exception as e:  # noqa: BLE001
            log.exception("indexing failed")
            with db.session() as s:
                r = s.get(IndexRun, out.id)
                r.finished_at = utcnow()
                r.stats = {"error": str(e)}

    builds.pool.submit(job)
    return out


@router.post("", status_code=202, response_model=IndexRunOut,
             summary="Index the lake in the background; poll the returned run")
def start_index(settings: SettingsDep, db: DatabaseDep, builds: BuildsDep,
                who: Identity = Depends(require_roles(*MANAGERS))):
    return run_index(settings, db, builds, who.name)


@router.get("/{run_id}", response_model=IndexRunOut, summary="An indexing run and its statistics")
def get_run(run_id: RowId, s: SessionDep, _: Identity = Depends(require_roles(*MANAGERS))):
    run = s.get(IndexRun, run_id)
    if run is None:
        raise HTTPException(404, f"no indexing run {run_id}")
    return run
