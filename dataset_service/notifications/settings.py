"""Notification settings, from the environment (prefix ``INSITU_NOTIFY_``)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSITU_NOTIFY_", extra="ignore")

    smtp_host: str = Field("", description="SMTP server the operator provides; empty: in-app notifications only")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_starttls: bool = Field(True, description="upgrade the connection with STARTTLS before sending")
    smtp_username: str = Field("", description="login at the SMTP server; empty: no AUTH")
    smtp_password: str = Field("", description="its password (from a secret)")
    smtp_timeout: float = Field(10.0, description="seconds for one SMTP conversation")
    mail_from: str = Field("insitu <noreply@insitu.invalid>", description="From: of every e-mail")
    mail_domain: str = Field("", description="address of a login without '@': <login>@<mail_domain>; "
                                             "empty: such users get in-app notifications only")
    public_url: str = Field("", description="hub origin written in e-mail links, e.g. https://insitu.example.org")
    expiry_warning_days: int = Field(7, ge=1, le=365, description="warn a project this many days before a grant ends")
    interval: float = Field(30.0, ge=0.2, description="seconds between two passes of the mailer and expiry sweep")
    run_worker: bool = Field(True, description="run the mailer and sweep in a thread of the service")
