"""Settings of access governance, from the environment (prefix ``INSITU_ACCESS_``)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .rules import Policy


class GovernanceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSITU_ACCESS_", extra="ignore")

    approvals_required: int = Field(2, ge=1, description="Approvals of distinct DAC members that grant a request.")
    rejections_required: int = Field(
        1, ge=1, description="Rejections that end a request (1: one rejection ends it).")
    max_duration_days: int = Field(365, ge=1, description="Longest grant a researcher may ask for, in days.")
    request_ttl_days: int = Field(
        90, ge=1, description="A pending request nobody decides expires after this many days without activity.")
    hub_service_name: str = Field(
        "insitu-hub", description="The hub's own service name: the only caller that opens and closes sessions.")
    admission_service_name: str = Field(
        "insitu-admission",
        description="Kyverno's admission check: a service that may read sessions (GET /api/sessions/{id}), nothing else.")
    trace_caller: str = Field("dataset-service", description="Caller name written into traces.")
    csrf_secret: str = Field(
        "", description="Key of the CSRF tokens of the web pages; empty: derived from the service's hub token.")

    def policy(self) -> Policy:
        return Policy(
            approvals_required=self.approvals_required,
            rejections_required=self.rejections_required,
            max_duration_days=self.max_duration_days,
            request_ttl_days=self.request_ttl_days,
        )
