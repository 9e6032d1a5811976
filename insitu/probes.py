"""Liveness and readiness for the platform's FastAPI services (dataset service, tracer).

Kubernetes' kubelet probes a container without credentials, so these two routes need none, and
they say nothing but ``ok`` / ``not ready`` (no version, no counts, no reason):

- ``GET /livez``: the process serves HTTP (the event loop answers); 200 ``ok``.
- ``GET /readyz``: the service can do its work: its database answers ``SELECT 1``; 200 ``ok``,
  otherwise 503 ``not ready`` (the reason goes to the service's log, never to the caller).

Both live at the root, outside the service prefix (``/services/<name>``): the hub's proxy routes
only the prefix to a service, so neither route is reachable through the hub; only the cluster
network reaches them (the chart's probes and ``helm test``). They are left out of the OpenAPI
document. The authenticated ``/health`` under the prefix keeps the details (pending traces, the
anchoring state) for the platform's own services.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

log = logging.getLogger("insitu.probes")

LIVE_PATH = "/livez"
READY_PATH = "/readyz"


def database_answers(engine: Any) -> Callable[[], None]:
    """A readiness check: ``SELECT 1`` on a SQLAlchemy ``engine`` (raises when the database does not
    answer). Duck-typed, so that this core module needs no SQLAlchemy of its own."""

    def check() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    return check


def install_probes(app: FastAPI, ready: Callable[[], None], *, name: str) -> None:
    """Add ``/livez`` and ``/readyz`` to ``app``; ``ready`` raises when the service is not ready."""

    @app.get(LIVE_PATH, include_in_schema=False)
    def livez() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get(READY_PATH, include_in_schema=False)
    def readyz() -> PlainTextResponse:
        try:
            ready()
        except Exception as e:  # noqa: BLE001 - any failure means "not ready"; the reason is logged only
            log.warning("%s not ready: %s", name, e)
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("ok")
