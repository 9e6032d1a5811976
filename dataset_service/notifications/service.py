"""Who is told what: notification rows, written inside the transaction of the action they tell about."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from insitu.identity import HubUnavailable
from insitu.names import PROJECT_PREFIX

from ..models import utcnow
from .models import Notification

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, directory, *, prefix: str = "", expiry_warning_days: int = 7):
        self.directory = directory  # governance.directory.HubDirectory (members_of)
        self.prefix = prefix.rstrip("/")
        self.expiry_warning_days = expiry_warning_days

    # --- recipients ------------------------------------------------------------
    def committee(self, project: str | None = None) -> list[str]:
        """DAC members, without members of ``project`` (they cannot review its requests)."""
        dac = set(self.directory.members_of("dac"))
        if project:
            dac -= set(self.directory.members_of(PROJECT_PREFIX + project))
        return sorted(dac)

    def project_members(self, project: str) -> list[str]:
        return sorted(self.directory.members_of(PROJECT_PREFIX + project))

    # --- writing ---------------------------------------------------------------
    def notify(self, s: Session, users: Iterable[str], kind: str, title: str, body: str = "", link: str = "",
               key: str | None = None) -> int:
        n = 0
        for u in sorted(set(users)):
            s.add(Notification(user=u, kind=kind, title=title[:255], body=body[:4000], link=link[:512], key=key))
            n += 1
        return n

    def safe(self, s: Session, users_fn, kind: str, *args, **kw) -> int:
        """``notify`` with recipients from the hub; a hub that cannot be asked tells nobody (never blocks
        the action itself)."""
        try:
            users = users_fn()
        except (HubUnavailable, ValueError) as e:  # the action goes on; the in-app list simply lacks this one
            log.warning("%s notification not recorded: the hub could not name its recipients: %s", kind, e)
            return 0
        return self.notify(s, users, kind, *args, **kw)

    # --- the in-app list -------------------------------------------------------
    @staticmethod
    def list_for(s: Session, user: str, *, unread_only: bool = False, limit: int = 50) -> list[Notification]:
        q = select(Notification).where(Notification.user == user)
        if unread_only:
            q = q.where(Notification.read_at.is_(None))
        return list(s.scalars(q.order_by(Notification.id.desc()).limit(limit)))

    @staticmethod
    def unread_count(s: Session, user: str) -> int:
        return s.scalar(select(func.count()).select_from(Notification)
                        .where(Notification.user == user, Notification.read_at.is_(None))) or 0

    @staticmethod
    def mark_read(s: Session, user: str, ids: list[int] | None) -> int:
        q = update(Notification).where(Notification.user == user, Notification.read_at.is_(None))
        if ids is not None:
            q = q.where(Notification.id.in_(ids))
        return s.execute(q.values(read_at=utcnow())).rowcount or 0

    # --- the expiry sweep --------------------------------------------------------
    def expiry_sweep(self, s: Session, gov, now: dt.datetime | None = None) -> int:
        """Warn each project once per grant that ends within ``expiry_warning_days``."""
        now = now or gov.now()
        soon = now + dt.timedelta(days=self.expiry_warning_days)
        told = 0
        for g, d in gov.grants_in_force(s):
            until = g.valid_until if g.valid_until.tzinfo else g.valid_until.replace(tzinfo=dt.timezone.utc)
            if until > soon:
                continue
            key = f"grant-expiring:{g.id}"
            if s.scalar(select(func.count()).select_from(Notification).where(Notification.key == key)):
                continue
            days = max(0, (until - now).days)
            told += self.safe(s, lambda: self.project_members(g.project), "grant-expiring",
                              f"Access to {d.name} v{d.version} ends in {days} day(s)",
                              f"Project {g.project}'s grant #{g.id} ends on {until:%Y-%m-%d %H:%M} UTC. "
                              "Ask for an extension on the dataset's page if you need more time.",
                              f"/datasets/{d.id}", key=key)
        return told
