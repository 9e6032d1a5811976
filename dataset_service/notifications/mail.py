"""The mail outbox: notification rows not yet e-mailed, sent through the operator's SMTP server."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from sqlalchemy import select

from ..models import utcnow
from .models import Notification
from .settings import NotifySettings


def address_of(login: str, settings: NotifySettings) -> str | None:
    if "@" in login:
        return login
    return f"{login}@{settings.mail_domain}" if settings.mail_domain else None


class Mailer:
    def __init__(self, settings: NotifySettings, service_prefix: str = ""):
        self.settings = settings
        self.prefix = service_prefix.rstrip("/")

    def message(self, n: Notification, to: str) -> EmailMessage:
        m = EmailMessage()
        m["From"] = self.settings.mail_from
        m["To"] = to
        m["Subject"] = f"[insitu] {n.title}"
        link = f"{self.settings.public_url.rstrip('/')}{self.prefix}{n.link}" if n.link else ""
        m.set_content(f"{n.body}\n\n{link}\n".strip() + "\n\nYou get this because of your role in insitu; "
                      "the same notice is in your list on the platform.\n")
        return m

    def send_pending(self, db, limit: int = 200) -> tuple[int, int]:
        """(sent, failed). Without an SMTP host nothing is sent and nothing is marked."""
        if not self.settings.smtp_host:
            return 0, 0
        with db.session() as s:
            rows = list(s.scalars(select(Notification).where(Notification.emailed_at.is_(None),
                                                             Notification.email_error.is_(None))
                                  .order_by(Notification.id).limit(limit)))
            if not rows:
                return 0, 0
            sent = failed = 0
            try:
                smtp = smtplib.SMTP(self.settings.smtp_host, self.settings.smtp_port,
                                    timeout=self.settings.smtp_timeout)
            except OSError:
                return 0, 0  # the server is down: try again next pass
            try:
                if self.settings.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.settings.smtp_username:
                    smtp.login(self.settings.smtp_username, self.settings.smtp_password)
                for n in rows:
                    to = address_of(n.user, self.settings)
                    if to is None:
                        n.email_error = "no e-mail address for this login"
                        continue
                    try:
                        smtp.send_message(self.message(n, to))
                        n.emailed_at = utcnow()
                        sent += 1
                    except smtplib.SMTPRecipientsRefused as e:
                        n.email_error = f"refused by the server: {e}"[:512]
                        failed += 1
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    pass
            return sent, failed
