"""Which of a user's servers a revocation stops (pure: hub server models in, server names out).

Used by the revocation reconciler (``hub.reconciler``) and the Keycloak membership sync
(``hub.keycloak_sync``), which stop them through the core's hub API client (``insitu.hubapi.HubAPI``).
"""
from __future__ import annotations

from insitu.names import project_of


def server_matches(server: dict, *, session_id: str | None, project: str | None) -> bool:
    """Does ``server`` (a hub server model) belong to this session/project?

    Fail closed: a server whose options name neither a session nor a project
    matches.
    """
    opts = server.get("user_options") or {}
    sid = opts.get("session_id") or opts.get("insitu_session_id")
    if sid and session_id:
        return str(sid) == str(session_id)
    proj = opts.get("project")
    if proj and project:
        def norm(p: str) -> str:
            return project_of(p) or p
        return norm(str(proj)) == norm(str(project))
    return True


def servers_to_stop(user_model: dict | None, *, session_id: str | None = None,
                    project: str | None = None) -> list[str]:
    """Names of the active servers of ``user_model`` that belong to the session ('' = default)."""
    if not user_model:
        return []
    names = []
    # the hub lists only active servers (ready or pending) unless asked otherwise
    for name, srv in (user_model.get("servers") or {}).items():
        if srv.get("stopped"):
            continue
        if server_matches(srv, session_id=session_id, project=project):
            names.append(name)
    return sorted(names)
