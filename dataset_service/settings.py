"""Settings of the dataset service, from the environment (prefix ``INSITU_``) and ``.env``.

Every path defaults to the embedded layout under ``var/`` at the repository root
(docs/CONTRACTS.md §6). Tests build a ``Settings(...)`` with explicit values.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR = REPO_ROOT / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INSITU_", env_file=".env", extra="ignore", populate_by_name=True
    )

    lake_dir: Path = Field(VAR / "lake", description="Host path of the read-only DICOM lake.")
    datasets_dir: Path = Field(VAR / "datasets", description="Host folder holding the built dataset trees.")
    database_url: str = Field(
        f"sqlite:///{VAR / 'db' / 'dataset-service.sqlite'}",
        description="SQLAlchemy URL (SQLite by default, postgresql+psycopg://... in production).",
    )
    lake_mount_path: str = Field(
        "/mnt/datalake", description="Where workspaces see the lake; dataset symlinks point there."
    )
    gid_min: int = Field(200000, description="First POSIX gid handed to datasets.")
    gid_max: int = Field(299999, description="Last POSIX gid handed to datasets.")

    hub_api_url: str = Field(
        "http://127.0.0.1:8000/hub/api",
        validation_alias=AliasChoices("INSITU_HUB_API_URL", "JUPYTERHUB_API_URL", "hub_api_url"),
        description="JupyterHub REST API used to resolve caller tokens.",
    )
    hub_api_token: str = Field(
        "",
        validation_alias=AliasChoices("INSITU_HUB_API_TOKEN", "JUPYTERHUB_API_TOKEN", "hub_api_token"),
        description="This service's own hub token (set by the hub for managed services).",
    )
    hub_client_id: str = Field(
        "",
        validation_alias=AliasChoices("INSITU_HUB_CLIENT_ID", "JUPYTERHUB_CLIENT_ID", "hub_client_id"),
        description="OAuth client id of this service at the hub (browser login).",
    )
    oauth_callback_url: str = Field(
        "",
        validation_alias=AliasChoices(
            "INSITU_OAUTH_CALLBACK_URL", "JUPYTERHUB_OAUTH_CALLBACK_URL", "oauth_callback_url"),
        description="OAuth callback URL of this service.",
    )
    public_hub_url: str = Field(
        "",
        validation_alias=AliasChoices("INSITU_PUBLIC_HUB_URL", "JUPYTERHUB_PUBLIC_HUB_URL", "public_hub_url"),
        description="Browser-facing origin of the hub ('' = same origin).",
    )
    identity_cache_ttl: float = Field(10.0, description="Seconds a hub answer about a token is cached: a revoked "
                                      "token or a removed group takes effect within this time.")
    service_prefix: str = Field(
        "/services/dataset-service",
        validation_alias=AliasChoices(
            "INSITU_SERVICE_PREFIX", "JUPYTERHUB_SERVICE_PREFIX", "service_prefix"
        ),
        description="URL prefix of every route (the hub proxy does not strip it).",
    )
    tracer_url: str = Field("", description="Tracer base URL; empty disables tracing.")
    tracer_token: str = Field("", description="Token presented to the tracer.")
    pseudonym_key: str = Field(
        "insitu-dev-pseudonym-key", description="Key of the user pseudonyms written into traces."
    )

    index_workers: int = Field(0, description="Indexer processes; 0 means all cores.")
    manage_lake_permissions: bool = Field(
        True, description="Make lake folders above the studies traverse-only (o-r) when indexing."
    )
    apply_acls: bool = Field(True, description="Write group:<gid>:r-x ACL entries on referenced studies.")
    max_studies_per_request: int = Field(100000, description="Largest study list accepted in one request.")
    max_page_size: int = Field(500, le=500, description="Largest page of a listing (the API declares 500).")
    max_body_bytes: int = Field(8 * 1024 * 1024, description="Largest request body (a larger one answers 413).")

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.gid_min <= 0 or self.gid_max < self.gid_min:
            raise ValueError("gid range must be positive and non-empty")
        if not self.lake_mount_path.startswith("/"):
            raise ValueError("lake_mount_path must be absolute")
        self.service_prefix = "/" + self.service_prefix.strip("/") if self.service_prefix.strip("/") else ""
        return self

    @property
    def sqlite_path(self) -> Path | None:
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url[len("sqlite:///"):])
        return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
