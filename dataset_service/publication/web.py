"""Public pages of published datasets (no login) and the data manager's "register the DOI" action.

| path | what |
|---|---|
| ``/public/datasets/{id}`` | the published version's metadata, Merkle root, DOI and citations |
| ``/public/datasets/{id}/datacite.json`` | DataCite JSON (the registry's own document) |
| ``/public/datasets/{id}/citation.bib`` | BibTeX |
| ``/public/datasets/{id}/ro-crate-metadata.json`` | RO-Crate 1.1 metadata (no data) |
| ``POST /manage/datasets/{id}/doi`` | mint the DOI again when the registry failed at publication |

Anything that is not a published dataset is answered 404 with the same words, whatever its state.
"""
from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from ..models import Dataset, DatasetState
from ..deps import SessionDep, get_settings
from ..web.deps import ManagerForm, done, error_page, render
from .citation import bibtex, datacite, ro_crate
from .service import PublisherDep, base_of, publish_settings, record

router = APIRouter(include_in_schema=False)


def _published(s: Session, dataset_id: str) -> Dataset | None:
    ds = s.get(Dataset, dataset_id[:64])
    return ds if ds is not None and ds.state == DatasetState.published else None


def _record(request: Request, s: Session, ds: Dataset) -> dict:
    return record(s, ds, base=base_of(request), prefix=get_settings(request).service_prefix,
                  ps=publish_settings(request))


def _missing(dataset_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"no published dataset {dataset_id[:64]!r}"}, status_code=404)


@router.get("/public/datasets/{dataset_id}", response_class=HTMLResponse)
def public_page(dataset_id: str, request: Request, s: SessionDep):
    ds = _published(s, dataset_id)
    if ds is None:
        return error_page(request, None, 404, "No such published dataset",
                          f"There is no published dataset {dataset_id[:64]!r}.")
    r = _record(request, s, ds)
    return render(request, None, "public_dataset.html", r=r, bib=bibtex(r),
                  datacite_text=json.dumps(datacite(r), indent=2, ensure_ascii=False))


def _document(dataset_id: str, request: Request, s: Session, make, media_type: str) -> Response:
    ds = _published(s, dataset_id)
    if ds is None:
        return _missing(dataset_id)
    doc = make(_record(request, s, ds))
    if isinstance(doc, str):
        return Response(doc, media_type=media_type)
    return JSONResponse(doc, media_type=media_type)


@router.get("/public/datasets/{dataset_id}/datacite.json")
def public_datacite(dataset_id: str, request: Request, s: SessionDep):
    return _document(dataset_id, request, s, datacite, "application/vnd.api+json")


@router.get("/public/datasets/{dataset_id}/citation.bib")
def public_bibtex(dataset_id: str, request: Request, s: SessionDep):
    return _document(dataset_id, request, s, bibtex, "application/x-bibtex; charset=utf-8")


@router.get("/public/datasets/{dataset_id}/ro-crate-metadata.json")
def public_ro_crate(dataset_id: str, request: Request, s: SessionDep):
    return _document(dataset_id, request, s, ro_crate, "application/ld+json")


@router.post("/manage/datasets/{dataset_id}/doi")
def register_doi(dataset_id: str, request: Request, who: ManagerForm, s: SessionDep, publisher: PublisherDep):
    back = f"{publisher.settings.service_prefix}/manage"
    if _published(s, dataset_id) is None:
        return error_page(request, who, 404, "No such published dataset",
                          f"There is no published dataset {dataset_id[:64]!r}: only published datasets get a DOI.",
                          back)
    if publisher.registry is None:
        return error_page(request, who, 409, "No DOI registry",
                          "The platform has no DOI registry configured (INSITU_PUBLISH_DOI_REGISTRY).", back)
    s.rollback()
    failed = publisher.mint_after_publish(dataset_id[:64], who.name)
    if failed:
        return error_page(request, who, 502, "The DOI registry did not register it", failed, back)
    return done(request, f"/public/datasets/{dataset_id[:64]}", "doi")
