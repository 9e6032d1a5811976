"""Publication settings, from the environment (prefix ``INSITU_PUBLISH_``): how a published dataset is cited
and which DOI registry, if any, mints its persistent identifier."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PublishSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSITU_PUBLISH_", extra="ignore")

    public_url: str = Field("", description="public origin of the platform written in citations, e.g. "
                                            "https://insitu.example.org (empty: the address the page was asked at)")
    publisher: str = Field("insitu research data platform", description="publisher (and organisational creator) "
                                                                        "named in citations")
    doi_registry: str = Field("", description="'datacite' to mint a DOI when a dataset is published; empty: none")
    datacite_api_url: str = Field("https://api.datacite.org", description="DataCite REST API (the test "
                                                                          "instance is https://api.test.datacite.org)")
    datacite_repository_id: str = Field("", description="the repository account (e.g. INSITU.DATA)")
    datacite_password: str = Field("", description="its password (from a secret)")
    doi_prefix: str = Field("", description="the repository's DOI prefix, e.g. 10.5072")
    timeout: float = Field(15.0, description="seconds for one registry call")
