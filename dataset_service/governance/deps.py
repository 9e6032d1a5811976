"""Wiring of governance into the app: one :class:`Governance` per app, built when the app is assembled
(``dataset_service.app.create_app``) from settings read once there."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from insitu.identity import HubUnavailable
from insitu.trace_client import TraceFailed, Tracing

from .directory import HubDirectory
from .rules import RuleViolation
from .service import Governance, SessionRefusedError
from .settings import GovernanceSettings


def build_governance(settings, gs: GovernanceSettings) -> Governance:
    """The governance of a dataset service with ``settings`` (pure: nothing is contacted here)."""
    return Governance(
        policy=gs.policy(),
        tracing=Tracing(settings.tracer_url, settings.tracer_token, settings.pseudonym_key, gs.trace_caller),
        directory=HubDirectory(settings.hub_api_url, settings.hub_api_token),
        datasets_dir=settings.datasets_dir,
        lake_dir=settings.lake_dir,
        lake_mount_path=settings.lake_mount_path,
    )


def governance_settings(request: Request) -> GovernanceSettings:
    return request.app.state.governance_settings


def get_governance(request: Request) -> Governance:
    return request.app.state.governance


GovernanceDep = Annotated[Governance, Depends(get_governance)]
GovernanceSettingsDep = Annotated[GovernanceSettings, Depends(governance_settings)]


def to_http(e: Exception) -> HTTPException:
    """The HTTP answer of a governance failure (the caller's transaction rolls back)."""
    if isinstance(e, RuleViolation):
        return HTTPException(e.status, e.reason)
    if isinstance(e, SessionRefusedError):
        return HTTPException(403, e.detail())
    if isinstance(e, TraceFailed):
        return HTTPException(503, str(e))
    if isinstance(e, HubUnavailable):
        return HTTPException(503, f"the hub cannot be reached: {e}")
    raise e


GOVERNANCE_ERRORS = (RuleViolation, SessionRefusedError, TraceFailed, HubUnavailable)
