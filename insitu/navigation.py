"""One navigation for the whole platform: the hub's pages and every service's pages.

``platform_nav(roles)`` is the bar shown at the top of the hub home, the
catalogue, the airlock and the tracer pages, with an entry only for the roles
that can use it (the pages still check; a hidden entry is no permission).
``home_sections(roles)`` is what the hub's home page offers each role. Paths
are absolute on the platform's one origin (the proxy): the hub under ``/hub/``,
the services under ``/services/<name>/``. Pure.
"""

from __future__ import annotations

from typing import Iterable

HUB = "/hub"
CATALOGUE = "/services/dataset-service"
TRACER = "/services/tracer"

RESEARCHERS, DAC, MANAGERS, AUDITORS, ADMINS = "researchers", "dac", "data-managers", "auditors", "admins"
READERS = (RESEARCHERS, MANAGERS, DAC, AUDITORS)

# (key, label, path, roles that see it)
NAV: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("home", "Home", f"{HUB}/home", ()),
    ("catalogue", "Catalogue", f"{CATALOGUE}/", READERS),
    ("requests", "My requests", f"{CATALOGUE}/my/requests", (RESEARCHERS,)),
    ("grants", "My grants", f"{CATALOGUE}/my/grants", (RESEARCHERS,)),
    ("exports", "Exports", f"{CATALOGUE}/exports", (RESEARCHERS, MANAGERS)),
    ("dac", "Committee", f"{CATALOGUE}/dac", (DAC,)),
    ("manage", "Data management", f"{CATALOGUE}/manage", (MANAGERS,)),
    ("audit", "Audit trail", f"{TRACER}/", (AUDITORS,)),
    ("notifications", "Notifications", f"{CATALOGUE}/notifications", READERS),
)

# (title, text, link label, path, roles)
SECTIONS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("Find datasets", "Browse the catalogue of de-identified imaging datasets and ask for access for a project.",
     "Open the catalogue", f"{CATALOGUE}/", READERS),
    ("My requests", "Follow your access requests through the data access committee.",
     "My requests", f"{CATALOGUE}/my/requests", (RESEARCHERS,)),
    ("My grants", "The datasets your projects may use, and until when.",
     "My grants", f"{CATALOGUE}/my/grants", (RESEARCHERS,)),
    ("My exports", "Ask for results to leave the platform and follow their review; download what was approved.",
     "My exports", f"{CATALOGUE}/exports", (RESEARCHERS,)),
    ("The committee's queue", "Review access requests: approve or reject with a reason, revoke grants.",
     "Open the queue", f"{CATALOGUE}/dac", (DAC,)),
    ("Data management", "Index the lake, build datasets, release, publish or invalidate them.",
     "Manage data", f"{CATALOGUE}/manage", (MANAGERS,)),
    ("Exports to review", "Check requested exports file by file and approve or reject them.",
     "Review exports", f"{CATALOGUE}/exports", (MANAGERS,)),
    ("The audit trail", "Query every use of data, grant and export, and check each record against the chain.",
     "Open the audit trail", f"{TRACER}/", (AUDITORS,)),
)


def roles_of(groups: Iterable[str]) -> set[str]:
    """The platform roles among hub group names (projects are ``project-<code>``)."""
    return {g for g in groups if g in (RESEARCHERS, DAC, MANAGERS, AUDITORS, ADMINS)}


def _allowed(roles: set[str], needed: tuple[str, ...]) -> bool:
    """As ``insitu.identity.Identity.has_role``: admins hold every role."""
    return not needed or ADMINS in roles or bool(roles & set(needed))


def _rebase(path: str, catalogue: str, tracer: str) -> str:
    for default, own in ((CATALOGUE, catalogue), (TRACER, tracer)):
        if path.startswith(default + "/"):
            return own.rstrip("/") + path[len(default):]
    return path


def platform_nav(roles: Iterable[str], prefix: str = "", *, catalogue: str = CATALOGUE,
                 tracer: str = TRACER) -> list[dict]:
    """The bar's entries for ``roles``: [{"key", "label", "href"}]. A service whose prefix is not the
    default passes its own (``catalogue`` for the dataset service, ``tracer`` for the tracer)."""
    rs = set(roles)
    return [{"key": k, "label": label, "href": prefix + _rebase(path, catalogue, tracer)}
            for k, label, path, needed in NAV if _allowed(rs, needed)]


def home_sections(roles: Iterable[str], prefix: str = "") -> list[dict]:
    rs = set(roles)
    return [{"title": t, "text": text, "link": link, "href": prefix + path}
            for t, text, link, path, needed in SECTIONS if _allowed(rs, needed) and (needed or rs)]
