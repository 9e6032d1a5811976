"""Wiring of governance into the app: one :class:`Governance` per app, built on first use."""
from __future__ import annotations

import threading

from fastapi import HTTPException, Request

from insitu.identity import HubUnavailable

from .directory import HubDirectory
from .rules import RuleViolation
from .service import Governance, SessionRefusedError
from .settings import GovernanceSettings
from .tracing import TraceFailed, Tracing

_lock = threading.Lock()


def governance_settings(request: Request) -> GovernanceSettings:
    gs = getattr(request.app.state, "governance_settings", None)
    if gs is None:
        gs = request.app.state.governance_settings = GovernanceSettings()
    return gs


def get_governance(request: Request) -> Governance:
    gov = getattr(request.app.state, "governance", None)
    if gov is not None:
        return gov
    with _lock:
        gov = getattr(request.app.state, "governance", None)
        if gov is None:
            settings = request.app.state.settings
            gs = governance_settings(request)
            gov = Governance(
                policy=gs.policy(),
                tracing=Tracing(settings.tracer_url, settings.tracer_token, settings.pseudonym_key, gs.trace_caller),
                directory=HubDirectory(settings.hub_api_url, settings.hub_api_token),
                datasets_dir=settings.datasets_dir,
                lake_dir=settings.lake_dir,
                lake_mount_path=settings.lake_mount_path,
            )
            request.app.state.governance = gov
    return gov


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
