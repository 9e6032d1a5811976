"""The dataset service's FastAPI app factory.

    app = create_app(Settings(...))

Every router is imported here and listed in ``ROUTERS`` (a new router adds
its import and one entry).
All routes live under ``settings.service_prefix`` because the hub proxy does
not strip it; only the probes ``/livez`` and ``/readyz`` (``insitu.probes``) are outside it. At start the app runs ``alembic upgrade head`` and recovers
builds that a crash interrupted.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from insitu.identity import HubAuthConfig, install_hub_auth, login_router
from insitu.names import SERVICE_DATASET

from insitu.apidocs import install_api_docs
from insitu.httpapi import install_http_policy
from insitu.pages import install_page_exits
from insitu.probes import database_answers, install_probes

from .airlock import api as airlock_api
from .airlock import web as airlock_web
from .airlock.deps import build_airlock
from .api import admin, catalogue, datasets
from .governance import api as governance_api
from .notifications import api as notifications_api
from .publication import web as publication_web
from .web import audit, dac, manage, pages
from .airlock.settings import AirlockSettings
from .builder import BuildRunner
from .db import Database
from .governance.deps import build_governance
from .notifications.wiring import install_notifications
from .publication.doi import registry_from
from .publication.settings import PublishSettings
from .governance.settings import GovernanceSettings
from .settings import Settings, get_settings

log = logging.getLogger(__name__)

#: every router of the service, in the order they are included (all under the service prefix)
ROUTERS = (
    catalogue.router, datasets.router, admin.router,
    airlock_api.router, airlock_web.router,
    governance_api.router,
    pages.router, manage.router, publication_web.router, audit.router, dac.router,
    notifications_api.router,
)


def create_app(settings: Settings | None = None, *, recover_builds: bool = True) -> FastAPI:
    settings = settings or get_settings()
    db = Database(settings.database_url)
    db.upgrade()
    builds = BuildRunner(settings, db)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recover_builds:
            builds.recover()
        worker = getattr(app.state, "notification_worker", None)
        if worker is not None:
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        builds.shutdown()
        db.dispose()

    prefix = settings.service_prefix
    app = FastAPI(
        title="insitu dataset service",
        version="1",
        description="Lake catalogue and immutable symlink datasets. Callers present a JupyterHub token "
        "(`Authorization: token T`); roles come from hub groups.",
        lifespan=lifespan,
        openapi_url=f"{prefix}/openapi.json",
        docs_url=None,  # served from local assets by install_api_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.builds = builds
    install_hub_auth(
        app,
        HubAuthConfig(
            api_url=settings.hub_api_url,
            api_token=settings.hub_api_token,
            client_id=settings.hub_client_id,
            oauth_callback_url=settings.oauth_callback_url,
            service_prefix=prefix or "/",
            public_hub_url=settings.public_hub_url.rstrip("/"),
            service_name=SERVICE_DATASET,
            cache_ttl=settings.identity_cache_ttl,
        ),
    )
    # governance and the export airlock: settings read here, once, and one object each per app
    gs = GovernanceSettings()
    app.state.governance_settings, app.state.governance = gs, build_governance(settings, gs)
    install_notifications(app, settings, db)  # in-app list and e-mail; the governance tells through it
    app.state.publish_settings = PublishSettings()  # citations of published datasets, the DOI registry if any
    app.state.doi_registry = registry_from(app.state.publish_settings)
    ast = AirlockSettings()
    app.state.airlock_settings, app.state.airlock = ast, build_airlock(settings, ast)
    app.include_router(login_router(cookie_path=prefix or "/"), prefix=prefix)
    for router in ROUTERS:
        app.include_router(router, prefix=prefix)
    install_http_policy(app, max_body=settings.max_body_bytes)
    install_page_exits(app)  # a page's dependency answers the login redirect or a page saying why not
    install_api_docs(app, prefix=prefix)
    install_probes(app, database_answers(db.engine), name=SERVICE_DATASET)  # /livez, /readyz for Kubernetes
    return app
