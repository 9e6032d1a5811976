"""The platform's front door: JupyterHub's pages in the platform's look.

``configure(c)`` puts ``hub/templates`` first in JupyterHub's ``template_paths``
(``page.html``: the platform's navigation bar and look, shared with the
services' pages through :mod:`insitu.navigation`; ``home.html``: what each role
can do, the workspace, and why it was last stopped) and adds the template
variables below. The pages themselves decide nothing: every link leads to a
page that checks the caller's role again.

Template variables (callables of the current user, as JupyterHub allows):

- ``insitu_nav``: the navigation entries for the user's roles;
- ``insitu_sections``: the home page's sections for the user's roles;
- ``insitu_roles``: the user's platform roles and projects, for the header;
- ``insitu_stop_notice``: why the user's workspace was last stopped by the
  platform (a revoked or expired grant), from :mod:`hub.stop_notices`;
- ``insitu_notifications``: when the dataset service's address is given, a
  callable the (async) home template calls for the user's newest notifications
  and unread count, asked of the service as the user (:mod:`hub.home_notifications`).
"""

from __future__ import annotations

from pathlib import Path

from insitu.names import project_of
from insitu.navigation import home_sections, platform_nav, roles_of

TEMPLATES = str(Path(__file__).resolve().parent / "templates")


def _groups(user) -> list[str]:
    try:
        return [g.name for g in (user.groups if user is not None else [])]
    except Exception:  # noqa: BLE001 - a page must render even without groups
        return []


def nav_for(user) -> list[dict]:
    return platform_nav(roles_of(_groups(user))) if user is not None else []


def sections_for(user) -> list[dict]:
    return home_sections(roles_of(_groups(user))) if user is not None else []


def roles_for(user) -> dict:
    groups = _groups(user)
    return {"roles": sorted(roles_of(groups)),
            "projects": sorted(p for p in map(project_of, groups) if p)}


def stop_notice_for(user, store_path: str | None = None) -> dict | None:
    if user is None or not store_path:
        return None
    from hub.stop_notices import StopNotices

    return StopNotices(store_path).latest(user.name)


def notifications_for(fetch):
    """The template variable: for a user, a call without arguments the async template awaits."""
    def var(user):
        if user is None or fetch is None:
            return None
        return lambda: fetch(user)
    return var


def configure(c, stop_notices_path: str | None = None, dataset_service_url: str | None = None) -> None:
    """Add the front door to a JupyterHub config object ``c``. ``dataset_service_url``: the service's
    address as the hub reaches it, with its prefix (``http://127.0.0.1:PORT/services/dataset-service``)."""
    paths = list(c.JupyterHub.template_paths) if "template_paths" in c.JupyterHub else []
    c.JupyterHub.template_paths = [TEMPLATES] + [p for p in paths if p != TEMPLATES]
    extra = dict(c.JupyterHub.template_vars) if "template_vars" in c.JupyterHub else {}
    extra.update(insitu_nav=nav_for, insitu_sections=sections_for, insitu_roles=roles_for,
                 insitu_stop_notice=lambda user: stop_notice_for(user, stop_notices_path))
    fetch = None
    if dataset_service_url:
        from hub.home_notifications import HomeNotifications

        fetch = HomeNotifications(dataset_service_url)
    extra["insitu_notifications"] = notifications_for(fetch)
    c.JupyterHub.template_vars = extra
    # the reconciler's stop notice (hub/stop_notices.py): JupyterHub removes a server's route before
    # stopping it, so the notice reaches JupyterLab through the hub first. (extra_handlers is marked
    # deprecated in JupyterHub 3.1 but still served in 6.x; a hub service cannot reach the spawner.)
    from hub.stop_notices import STOP_NOTICE_ROUTE, stop_notice_handler

    handlers = list(c.JupyterHub.extra_handlers) if "extra_handlers" in c.JupyterHub else []
    c.JupyterHub.extra_handlers = handlers + [(STOP_NOTICE_ROUTE, stop_notice_handler())]
