"""Assembling notifications into the app: the notifier on the governance, the mailer and its worker."""
from __future__ import annotations

from .mail import Mailer
from .service import Notifier
from .settings import NotifySettings
from .worker import NotificationWorker


def install_notifications(app, settings, db, ns: NotifySettings | None = None) -> None:
    ns = ns or NotifySettings()
    gov = app.state.governance
    notifier = Notifier(gov.directory, prefix=settings.service_prefix, expiry_warning_days=ns.expiry_warning_days)
    gov.notifier = notifier
    mailer = Mailer(ns, settings.service_prefix)
    app.state.notify_settings, app.state.notifier, app.state.mailer = ns, notifier, mailer
    app.state.notification_worker = NotificationWorker(db, gov, notifier, mailer, ns.interval) if ns.run_worker \
        else None
