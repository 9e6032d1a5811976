"""The in-app notification list: API (for the hub home and scripts) and the page ``/notifications``."""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from insitu.httpapi import BodyId
from insitu.identity import CurrentIdentity

from ..governance.service import aware
from ..deps import SessionDep
from ..web.deps import ReaderForm, ReaderPage, done, render
from .service import Notifier

router = APIRouter()


def view(n) -> dict:
    return {"id": n.id, "kind": n.kind, "title": n.title, "body": n.body, "link": n.link,
            "created_at": aware(n.created_at).isoformat(), "read": n.read_at is not None}


@router.get("/api/notifications", tags=["notifications"])
def list_notifications(who: CurrentIdentity, s: SessionDep, unread: bool = False, limit: int = 50):
    """The caller's notifications, newest first (a service token gets an empty list)."""
    limit = max(1, min(limit, 200))
    rows = [] if who.is_service else Notifier.list_for(s, who.name, unread_only=unread, limit=limit)
    return {"unread": 0 if who.is_service else Notifier.unread_count(s, who.name),
            "items": [view(n) for n in rows]}


@router.get("/api/notifications/unread-count", tags=["notifications"])
def unread_count(who: CurrentIdentity, s: SessionDep):
    return {"unread": 0 if who.is_service else Notifier.unread_count(s, who.name)}


class ReadIn(BaseModel):
    ids: list[BodyId] | None = Field(None, max_length=500, description="these; none given: all of the caller's")


@router.post("/api/notifications/read", tags=["notifications"])
def mark_read(body: ReadIn, who: CurrentIdentity, s: SessionDep):
    n = 0 if who.is_service else Notifier.mark_read(s, who.name, body.ids)
    return {"marked": n, "unread": 0 if who.is_service else Notifier.unread_count(s, who.name)}


@router.get("/notifications", include_in_schema=False)
def page(request: Request, who: ReaderPage, s: SessionDep):
    rows = Notifier.list_for(s, who.name, limit=100)
    return render(request, who, "notifications.html", items=[view(n) | {"at": aware(n.created_at)} for n in rows],
                  unread=Notifier.unread_count(s, who.name))


@router.post("/notifications/read", include_in_schema=False)
def page_read(request: Request, who: ReaderForm, s: SessionDep):
    Notifier.mark_read(s, who.name, None)
    return done(request, "/notifications", "read")
