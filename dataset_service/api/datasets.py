"""Datasets: list, create, get, update, state transitions, manifest, build status, integrity check."""
from __future__ import annotations

from contextlib import contextmanager

from fastapi import APIRouter, Depends, HTTPException, Response
from sqlalchemy import func, select

from insitu.httpapi import Offset, limit_query, unprocessable
from insitu.trace_client import TracerError

from ..builder import RequestError, create_dataset, final_path
from ..deps import (MANAGERS, READERS, BuildsDep, DatabaseDep, Identity, SessionDep, SettingsDep,
                    require_roles)
from ..models import Dataset, DatasetEvent, DatasetState
from ..operations import Conflict, NotFound, check, transition, update_metadata
from ..publication.service import PublisherDep
from ..schemas import (BuildStatus, CheckOut, DatasetCreate, DatasetOut, DatasetUpdate, EventOut, Page,
                       PublicDataset, Transition)
from ..settings import Settings
from ..states import VISIBLE_TO_READERS

router = APIRouter(tags=["datasets"])
SEE_ALL = ("data-managers", "auditors")  # and admins
Limit = limit_query(50, 500)


@contextmanager
def operation_errors(what: str):
    """The HTTP answers of an operation (``operations.py``): 404 no such dataset, 409 not in this state, 503
    the tracer did not take ``what`` (nothing changed)."""
    try:
        yield
    except NotFound as e:
        raise HTTPException(404, str(e)) from None
    except Conflict as e:
        raise HTTPException(409, str(e)) from None
    except TracerError as e:
        raise HTTPException(503, f"{what} could not be traced, nothing changed: {e}") from None


def _visible(who: Identity, ds: Dataset | None, dataset_id: str) -> Dataset:
    if ds is None or not (who.has_role(*SEE_ALL) or ds.state in VISIBLE_TO_READERS):
        raise HTTPException(404, f"no dataset {dataset_id!r}")
    return ds


def _paging(limit: int, settings: Settings) -> None:
    if limit > settings.max_page_size:
        raise unprocessable(f"limit must be at most {settings.max_page_size}", ("query", "limit"), input=limit)


@router.get("/api/datasets", response_model=Page[DatasetOut], summary="List datasets (paged)")
def list_datasets(s: SessionDep, settings: SettingsDep, state: DatasetState | None = None, limit: Limit = 50,
                  offset: Offset = 0, who: Identity = Depends(require_roles(*READERS))):
    """Data managers, auditors and admins see every dataset; researchers and DAC members see the
    released, published and invalidated ones."""
    _paging(limit, settings)
    q = select(Dataset)
    if not who.has_role(*SEE_ALL):
        q = q.where(Dataset.state.in_(list(VISIBLE_TO_READERS)))
    if state is not None:
        q = q.where(Dataset.state == state)
    total = s.scalar(select(func.count()).select_from(q.subquery()))
    items = s.scalars(q.order_by(Dataset.created_at, Dataset.id).limit(limit).offset(offset)).all()
    return Page[DatasetOut](total=total, limit=limit, offset=offset, items=[DatasetOut.model_validate(x) for x in items])


@router.post("/api/datasets", status_code=202, response_model=DatasetOut,
             summary="Create a dataset from study ids, a catalogue query or all studies; it builds in the background")
def create(body: DatasetCreate, response: Response, settings: SettingsDep, db: DatabaseDep, builds: BuildsDep,
           who: Identity = Depends(require_roles(*MANAGERS))):
    try:
        dataset_id = create_dataset(settings, db, actor=who.name, **body.model_dump(mode="json"))
    except RequestError as e:
        if e.status == 422:
            raise unprocessable(str(e)) from None
        raise HTTPException(e.status, str(e)) from None
    builds.submit(dataset_id)
    response.headers["Location"] = f"{settings.service_prefix}/api/datasets/{dataset_id}"
    with db.session() as s:
        return DatasetOut.model_validate(s.get(Dataset, dataset_id))


@router.get("/api/datasets/{dataset_id}", response_model=DatasetOut, summary="One dataset")
def get_dataset(dataset_id: str, s: SessionDep, who: Identity = Depends(require_roles(*READERS))):
    return _visible(who, s.get(Dataset, dataset_id), dataset_id)


@router.patch("/api/datasets/{dataset_id}", response_model=DatasetOut,
              summary="Edit the fields that do not alter the content (description, licence, tags, contact)")
def patch_dataset(dataset_id: str, body: DatasetUpdate, settings: SettingsDep, db: DatabaseDep,
                  who: Identity = Depends(require_roles(*MANAGERS))):
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise unprocessable("fields cannot be set to null", ("body", next(k for k, v in changes.items() if v is None)))
    with operation_errors("the change"):
        ds = update_metadata(settings, db, dataset_id, changes, who.name)
    return DatasetOut.model_validate(ds)


@router.post("/api/datasets/{dataset_id}/state", response_model=DatasetOut,
             summary="State transition: draft→released→published, any of them→invalidated")
def set_state(dataset_id: str, body: Transition, response: Response, settings: SettingsDep, db: DatabaseDep,
              publisher: PublisherDep, who: Identity = Depends(require_roles(*MANAGERS))):
    with operation_errors("the transition"):
        ds = transition(settings, db, dataset_id, body.state, who.name, body.reason)
    if body.state == DatasetState.published:  # a DOI when the platform has a registry (a failure leaves none)
        failed = publisher.mint_after_publish(dataset_id, who.name)
        if failed:
            why = failed[:200].encode("ascii", "replace").decode().replace('"', "'")
            response.headers["Warning"] = f'199 - "published without a DOI: {why}"'
    return DatasetOut.model_validate(ds)


@router.get("/api/datasets/{dataset_id}/manifest", summary="The dataset's manifest.json (insitu-manifest/1)")
def manifest(dataset_id: str, s: SessionDep, settings: SettingsDep, who: Identity = Depends(require_roles(*READERS))):
    ds = _visible(who, s.get(Dataset, dataset_id), dataset_id)
    if ds.merkle_root is None:
        raise HTTPException(409, f"dataset {dataset_id} is {ds.state.value}: no manifest yet")
    try:
        data = (final_path(settings, dataset_id) / "manifest.json").read_bytes()
    except OSError:
        raise HTTPException(500, "manifest missing on disk: run the integrity check") from None
    return Response(data, media_type="application/json")


@router.get("/api/datasets/{dataset_id}/build", response_model=BuildStatus, summary="Build state and progress")
def build_status(dataset_id: str, s: SessionDep, who: Identity = Depends(require_roles(*SEE_ALL))):
    ds = _visible(who, s.get(Dataset, dataset_id), dataset_id)
    return BuildStatus(dataset_id=ds.id, state=ds.state, phase=ds.build_phase, done=ds.progress_done,
                       total=ds.progress_total, attempts=ds.build_attempts, error=ds.error)


@router.get("/api/datasets/{dataset_id}/events", response_model=list[EventOut], summary="History of a dataset")
def events(dataset_id: str, s: SessionDep, who: Identity = Depends(require_roles(*SEE_ALL))):
    _visible(who, s.get(Dataset, dataset_id), dataset_id)
    return s.scalars(select(DatasetEvent).where(DatasetEvent.dataset_id == dataset_id).order_by(DatasetEvent.seq)).all()


@router.post("/api/datasets/{dataset_id}/check", response_model=CheckOut,
             summary="Integrity check: re-hash every file and compare with the manifest")
def integrity(dataset_id: str, settings: SettingsDep, db: DatabaseDep,
              who: Identity = Depends(require_roles(*SEE_ALL))):
    with operation_errors("the check"):
        res = check(settings, db, dataset_id)
    return CheckOut(dataset_id=res.dataset_id, ok=res.ok, files_checked=res.files_checked, problems=res.problems)


@router.get("/api/public/datasets", response_model=Page[PublicDataset],
            summary="Published datasets: public, citable metadata (no login)")
def public_list(s: SessionDep, settings: SettingsDep, limit: Limit = 50, offset: Offset = 0):
    _paging(limit, settings)
    q = select(Dataset).where(Dataset.state == DatasetState.published)
    total = s.scalar(select(func.count()).select_from(q.subquery()))
    items = s.scalars(q.order_by(Dataset.created_at, Dataset.id).limit(limit).offset(offset)).all()
    return Page[PublicDataset](total=total, limit=limit, offset=offset,
                               items=[PublicDataset.model_validate(x) for x in items])


@router.get("/api/public/datasets/{dataset_id}", response_model=PublicDataset,
            summary="One published dataset's public metadata (no login)")
def public_get(dataset_id: str, s: SessionDep):
    ds = s.get(Dataset, dataset_id)
    if ds is None or ds.state != DatasetState.published:
        raise HTTPException(404, f"no published dataset {dataset_id!r}")
    return ds
