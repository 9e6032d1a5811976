"""FastAPI dependencies of the tracer's routers, as ``Annotated`` types (as in the dataset service's
``deps.py``): each is the object ``tracer.app.create_app`` put in ``app.state`` when it assembled the
app; a router never reads ``app.state`` itself. The callers' checks read the service lists of the
settings: ``WriterService`` (``writer_services``: may post traces), ``PlatformService``
(``platform_services``: metrics and health), ``Auditor`` (``auditors`` or ``admins``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from insitu.identity import CurrentIdentity, Identity, require_roles, require_service
from insitu.names import Role

from .batcher import Batcher
from .intake import Intake
from .metrics import Metrics
from .settings import TracerSettings
from .store import TraceStore


def get_settings(request: Request) -> TracerSettings:
    return request.app.state.settings


def get_store(request: Request) -> TraceStore:
    return request.app.state.store


def get_intake(request: Request) -> Intake:
    return request.app.state.intake


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_batcher(request: Request) -> Batcher | None:
    return request.app.state.batcher


SettingsDep = Annotated[TracerSettings, Depends(get_settings)]
StoreDep = Annotated[TraceStore, Depends(get_store)]
IntakeDep = Annotated[Intake, Depends(get_intake)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
BatcherDep = Annotated[Batcher | None, Depends(get_batcher)]


async def writer_service(who: CurrentIdentity, settings: SettingsDep) -> Identity:
    return await require_service(*settings.writer_services)(who)


async def platform_service(who: CurrentIdentity, settings: SettingsDep) -> Identity:
    return await require_service(*settings.platform_services)(who)


WriterService = Annotated[Identity, Depends(writer_service)]
PlatformService = Annotated[Identity, Depends(platform_service)]
Auditor = Annotated[Identity, Depends(require_roles(Role.AUDITORS.value))]
