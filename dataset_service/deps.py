"""FastAPI dependencies shared by every router of the service.

Identity is resolved by the hub (``insitu.identity``); the hub it asks is set by
``Settings.hub_api_url`` when the app is built, never patched at run time.
"""
from __future__ import annotations

from typing import Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from insitu.identity import Identity, current_identity, require_roles, require_service  # noqa: F401
from insitu.names import READERS, Role  # noqa: F401  (READERS: also public here, for the routers)

from .db import Database
from .settings import Settings

# role sets used by the routers (admins pass every role check anyway)
MANAGERS = (Role.DATA_MANAGERS.value,)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.db


def get_session(db: Database = Depends(get_database)) -> Iterator[Session]:
    """A database session committed when the route returns.

    Always depend on it as ``Depends(get_session, scope="function")``: with the
    default scope FastAPI runs the commit only after the answer has been sent,
    so a failed commit would still look like success to the caller.
    """
    with db.session() as s:
        yield s
