"""The tracer assembled in one place (FastAPI app factory): settings, the store, the intake, the batcher
and the metrics (in ``app.state``, reached by the routers through ``tracer.deps``), the hub login, the
routers (``tracer.api``, ``tracer.web.pages``, ``tracer.web.reports``), HTTP policy, API docs, probes.

All routes live under ``settings.service_prefix`` (``/services/tracer``, where
the hub proxy routes the tracer service):

- the REST API (``tracer.api``: ``POST /traces``, ``GET /traces[/{id}]``, ``GET /anchor``, ``GET /metrics``,
  ``GET /health``; who may call each is written there);
- ``GET /livez``, ``GET /readyz`` — outside the prefix, without credentials, ``ok`` and nothing else
  (``insitu.probes``): the chart's liveness and readiness probes.
- ``GET /``, ``GET /trace/{id}`` — the auditor's web pages (``tracer.web.pages``),
  logged in through the hub's OAuth (``/login``, ``/oauth_callback``, ``/logout``), and the reports
  (``tracer.web.reports``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from insitu.apidocs import install_api_docs
from insitu.httpapi import install_http_policy
from insitu.identity import HubAuthConfig, install_hub_auth, login_router
from insitu.names import SERVICE_TRACER
from insitu.pages import install_page_exits
from insitu.probes import database_answers, install_probes
from tracer import api
from tracer.api import MAX_BODY
from tracer.batcher import Batcher, BatcherConfig
from tracer.chain import Chain, read_key
from tracer.db import make_engine, upgrade
from tracer.intake import Intake
from tracer.metrics import Metrics
from tracer.settings import ROOT, TracerSettings
from tracer.store import TraceStore
from tracer.web import pages, reports

log = logging.getLogger("tracer")


def build_chain(settings: TracerSettings) -> Chain:
    key_file = settings.key_file
    if key_file is None and not settings.private_key and (ROOT / "var" / "chain" / "tracer.key").exists():
        key_file = ROOT / "var" / "chain" / "tracer.key"  # written by `python -m tracer dev-chain`
    key = read_key(key_file, settings.private_key)
    return Chain(settings.chain_url, key, chain_id=settings.chain_id, gas_price=settings.gas_price,
                 gas_limit=settings.gas_limit, poa=settings.poa)


def create_app(settings: TracerSettings | None = None, *, hub_auth: HubAuthConfig | None = None,
               chain: Chain | None = None) -> FastAPI:
    settings = settings or TracerSettings()
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    upgrade(engine)
    store = TraceStore(engine)
    metrics = Metrics(store.pending_stats)
    intake = Intake(store)
    batcher: Batcher | None = None
    if settings.run_batcher:
        batcher = Batcher(
            store, chain or build_chain(settings),
            BatcherConfig(settings.batch_max, settings.batch_wait, settings.receipt_timeout,
                          settings.retry_initial, settings.retry_max),
            metrics=metrics, contract_address=settings.contract_address,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        intake.start()
        if batcher is not None:
            batcher.start()
        try:
            yield
        finally:
            if batcher is not None:
                batcher.stop()
            await intake.stop()
            engine.dispose()

    app = FastAPI(title="insitu tracer", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=f"{settings.service_prefix}/openapi.json")
    app.state.settings, app.state.store, app.state.batcher, app.state.metrics = settings, store, batcher, metrics
    app.state.intake = intake
    install_hub_auth(app, hub_auth or HubAuthConfig.from_env(
        api_url=settings.hub_api_url or None, default_service_name=SERVICE_TRACER, service_prefix=settings.service_prefix))

    prefix = settings.service_prefix.rstrip("/")
    app.include_router(api.router, prefix=prefix)
    # the auditor's web pages (tracer/web), with browser login through the hub's OAuth
    app.include_router(login_router(cookie_path=prefix or "/"), prefix=prefix)
    app.include_router(pages.router, prefix=prefix)
    app.include_router(reports.router, prefix=prefix)
    install_page_exits(app)  # a page's dependency answers the login redirect or a page saying why not
    install_http_policy(app, max_body=MAX_BODY)
    install_api_docs(app, prefix=prefix, extra_schemas=api.trace_schemas())
    install_probes(app, database_answers(engine), name=SERVICE_TRACER)  # /livez, /readyz for Kubernetes
    return app
