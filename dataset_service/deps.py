"""FastAPI dependencies shared by every router of the service, as ``Annotated`` types (the FastAPI
full-stack template's ``api/deps.py``): ``SettingsDep``, ``DatabaseDep`` (for the operations that open
their own transactions), ``SessionDep`` (one transaction per request, committed before the answer),
``BuildsDep`` (the app's build runner). Each is the object ``create_app`` put in ``app.state``; a
router never reads ``app.state`` itself.

Identity is resolved by the hub (``insitu.identity``); the hub it asks is set by
``Settings.hub_api_url`` when the app is built, never patched at run time.
"""
from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from insitu.identity import Identity, current_identity, require_roles, require_service  # noqa: F401
from insitu.names import READERS, Role  # noqa: F401  (READERS: also public here, for the routers)

from .builder import BuildRunner
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


def get_build_runner(request: Request) -> BuildRunner:
    return request.app.state.builds


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
BuildsDep = Annotated[BuildRunner, Depends(get_build_runner)]
