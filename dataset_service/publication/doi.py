"""Persistent identifiers through a registry, behind one interface.

``DoiRegistry.register(doc, suffix)`` mints (or updates) a findable DOI for a dataset's DataCite document
and answers the DOI. ``DataCiteRegistry`` speaks the DataCite REST API (``PUT /dois/<prefix>/<suffix>``,
JSON:API, HTTP basic auth with the repository account, ``event: publish``); another registry (Zenodo)
would be one more class with the same method. ``registry_from(settings)`` builds the configured one,
or None. Errors: ``RegistryError`` with a reason a person can read; nothing is retried here.
"""
from __future__ import annotations

import copy
import re
from typing import Protocol

import httpx

from .settings import PublishSettings

_SUFFIX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class RegistryError(Exception):
    pass


class DoiRegistry(Protocol):
    name: str

    def register(self, doc: dict, suffix: str) -> str: ...


class DataCiteRegistry:
    name = "DataCite"

    def __init__(self, api_url: str, repository_id: str, password: str, prefix: str, timeout: float = 15.0,
                 transport: httpx.BaseTransport | None = None):
        if not (repository_id and password and re.fullmatch(r"10\.\d{4,9}", prefix or "")):
            raise RegistryError("DataCite needs a repository id, its password and a DOI prefix like 10.5072")
        self.api_url, self.prefix = api_url.rstrip("/"), prefix
        self.auth, self.timeout, self.transport = (repository_id, password), timeout, transport

    def register(self, doc: dict, suffix: str) -> str:
        suffix = suffix.lower()
        if not _SUFFIX.fullmatch(suffix):
            raise RegistryError(f"{suffix!r} cannot be a DOI suffix")
        doi = f"{self.prefix}/{suffix}"
        body = copy.deepcopy(doc)
        body["data"]["id"] = doi
        body["data"]["attributes"].update(doi=doi, prefix=self.prefix, suffix=suffix, event="publish")
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport, auth=self.auth) as c:
                r = c.put(f"{self.api_url}/dois/{doi}", json=body,
                          headers={"Content-Type": "application/vnd.api+json"})
        except httpx.HTTPError as e:
            raise RegistryError(f"DataCite cannot be reached: {type(e).__name__}") from None
        if r.status_code not in (200, 201):
            raise RegistryError(f"DataCite refused the DOI ({r.status_code}): {_errors(r)}")
        try:
            got = r.json()["data"]["id"]
        except (ValueError, KeyError, TypeError):
            raise RegistryError("DataCite answered without the DOI") from None
        if str(got).lower() != doi:
            raise RegistryError(f"DataCite answered another DOI ({got!r})")
        return doi


def _errors(r: httpx.Response) -> str:
    try:
        errs = r.json().get("errors") or []
        return "; ".join(str(e.get("title") or e) for e in errs)[:500] or r.text[:200]
    except (ValueError, AttributeError):
        return r.text[:200]


def registry_from(ps: PublishSettings) -> DoiRegistry | None:
    if not ps.doi_registry:
        return None
    if ps.doi_registry.lower() == "datacite":
        return DataCiteRegistry(ps.datacite_api_url, ps.datacite_repository_id, ps.datacite_password,
                                ps.doi_prefix, ps.timeout)
    raise RegistryError(f"unknown DOI registry {ps.doi_registry!r} (known: datacite)")
