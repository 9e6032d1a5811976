"""Published datasets: their public record, their DOI (kept in the dataset's event log), minting it."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .. import traces
from ..traces import TracerError
from ..builder import add_event
from ..db import Database
from ..deps import DatabaseDep, SettingsDep
from ..governance.service import aware
from ..models import Dataset, DatasetEvent, DatasetState
from ..settings import Settings
from .citation import datacite, public_record
from .doi import DoiRegistry, RegistryError
from .settings import PublishSettings

log = logging.getLogger(__name__)


def _events(s: Session, ds_id: str, action: str) -> list[DatasetEvent]:
    return list(s.scalars(select(DatasetEvent).where(DatasetEvent.dataset_id == ds_id, DatasetEvent.action == action)
                          .order_by(DatasetEvent.seq)))


def current_doi(s: Session, ds_id: str) -> str | None:
    evs = _events(s, ds_id, "doi")
    return (evs[-1].detail or {}).get("doi") if evs else None


def published_at(s: Session, ds_id: str) -> dt.datetime | None:
    for e in reversed(_events(s, ds_id, "transition")):
        if (e.detail or {}).get("to") == DatasetState.published.value:
            return aware(e.at)
    return None


def page_url(base: str, prefix: str, ds_id: str) -> str:
    return f"{base.rstrip('/')}{prefix}/public/datasets/{ds_id}"


def record(s: Session, ds: Dataset, *, base: str, prefix: str, ps: PublishSettings) -> dict:
    prev = s.get(Dataset, ds.previous_id) if ds.previous_id else None
    previous_url = page_url(base, prefix, prev.id) if prev is not None and prev.state == DatasetState.published \
        else None
    return public_record(ds, url=page_url(base, prefix, ds.id), publisher=ps.publisher,
                         published=published_at(s, ds.id) or aware(ds.created_at), doi=current_doi(s, ds.id),
                         previous_url=previous_url)


def mint(settings, db, registry: DoiRegistry, ds_id: str, actor: str, *, base: str, ps: PublishSettings) -> str:
    """The dataset's DOI: minted at the registry and recorded (event and trace), or the one it has."""
    with db.session() as s:
        ds = s.get(Dataset, ds_id)
        if ds is None or ds.state != DatasetState.published:
            raise RegistryError("only a published dataset gets a DOI")
        have = current_doi(s, ds_id)
        if have:
            return have
        doc = datacite(record(s, ds, base=base, prefix=settings.service_prefix, ps=ps))
    doi = registry.register(doc, ds_id)
    with db.session() as s:
        ds = s.get(Dataset, ds_id)
        ev = add_event(s, ds, actor, "doi", {"doi": doi, "registry": registry.name})
        s.flush()
        traces.record(settings, "UPDATE_DATASET", actor=actor, dataset_id=ds.id, root=ds.merkle_root,
                      details={"fields": "doi", "doi": doi}, key=f"event-{ev.seq}")
    return doi


def publish_settings(request) -> PublishSettings:
    return request.app.state.publish_settings


def base_of(request) -> str:
    """The public origin written in citations: the configured one, else the one the page was asked at."""
    return publish_settings(request).public_url or str(request.base_url).rstrip("/")


@dataclass(frozen=True)
class Publisher:
    """The DOI side of a publication, as the app was assembled: its settings, database, DOI registry (None:
    the platform mints no DOIs), citation settings, and the public origin of the request's citations."""
    settings: Settings
    db: Database
    registry: DoiRegistry | None
    ps: PublishSettings
    base: str

    def mint_after_publish(self, dataset_id: str, actor: str) -> str | None:
        """After a publication: mint the DOI when a registry is configured. The reason when it failed, else
        None."""
        if self.registry is None:
            return None
        try:
            mint(self.settings, self.db, self.registry, dataset_id, actor, base=self.base, ps=self.ps)
        except RegistryError as e:
            return str(e)
        except (TracerError, SQLAlchemyError) as e:  # the DOI exists at the registry; retried from the page
            log.warning("DOI of %s registered but not recorded: %s", dataset_id, e)
            return f"the DOI could not be recorded ({type(e).__name__}); register it again from the page"
        return None


def get_publisher(request: Request, settings: SettingsDep, db: DatabaseDep) -> Publisher:
    return Publisher(settings, db, request.app.state.doi_registry, publish_settings(request), base_of(request))


PublisherDep = Annotated[Publisher, Depends(get_publisher)]
