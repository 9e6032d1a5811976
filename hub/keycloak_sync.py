"""Keycloak membership reconciler: membership removed in Keycloak takes effect now.

Logins bring a user's Keycloak groups into the hub, but only at login (and at
token refresh). This pass closes the gap: it reads the insitu groups and their
members from Keycloak's admin REST API (python-keycloak, a confidential client
with the ``view-users`` role, client-credentials grant) and, for every hub user,

- removes the hub groups (roles, ``project-<code>``) that Keycloak no longer
  gives them (a user who is disabled or deleted in Keycloak has none);
- stops the servers of every project they lost (servers whose options name
  another project are left alone; a server naming no project is stopped);
- stops all their servers when they hold neither ``researchers`` nor ``admins``
  any more.

Invariants
- Only removals: a group is added at the user's next login, never here.
- If Keycloak cannot be read, or its answer holds none of the role groups (a
  wrong realm or client looks like "everybody left"), nothing is changed.
- Group names are matched as in :func:`hub.auth.insitu_groups` (the last path
  element), so ``/projects/project-lung`` is ``project-lung``.

Settings (environment of the ``insitu-hub`` service): ``KEYCLOAK_URL``,
``KEYCLOAK_REALM``, ``KEYCLOAK_SYNC_CLIENT_ID``, ``KEYCLOAK_SYNC_CLIENT_SECRET``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

from hub.auth import insitu_groups
from hub.servers import servers_to_stop
from insitu.hubapi import HubAPI
from insitu.names import ROLES, Role, project_of

log = logging.getLogger("insitu.keycloak_sync")

WORKSPACE_ROLES = frozenset({Role.RESEARCHERS.value, Role.ADMINS.value})


class KeycloakDirectory:
    """Insitu group membership as Keycloak holds it."""

    def __init__(self, admin):
        """``admin``: a ``keycloak.KeycloakAdmin`` (python-keycloak)."""
        self.admin = admin

    @classmethod
    def connect(cls, server_url: str, realm: str, client_id: str, client_secret: str,
                *, verify: bool | str = True, timeout: int = 20) -> "KeycloakDirectory":
        from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

        conn = KeycloakOpenIDConnection(
            server_url=server_url, realm_name=realm, client_id=client_id,
            client_secret_key=client_secret, verify=verify, timeout=timeout,
        )
        return cls(KeycloakAdmin(connection=conn))

    def _walk(self, groups):
        for g in groups or ():
            yield g
            yield from self._walk(g.get("subGroups"))

    def membership(self) -> dict[str, set[str]]:
        """``{insitu group: {enabled user names}}`` for every insitu group in the realm."""
        out: dict[str, set[str]] = {}
        for g in self._walk(self.admin.get_groups(full_hierarchy=True)):
            names = insitu_groups([g.get("path") or g.get("name") or ""])
            if not names:
                continue
            members = self.admin.get_group_members(g["id"], {"briefRepresentation": True})
            enabled = {m["username"] for m in members if m.get("enabled", True) and m.get("username")}
            out.setdefault(names[0], set()).update(enabled)
        return out


@dataclass
class SyncReport:
    removed: list[tuple[str, str]] = field(default_factory=list)  # (user, group)
    stopped: list[str] = field(default_factory=list)  # "user/server"
    error: str | None = None


def plan_removals(keycloak: dict[str, set[str]], hub_users: list[dict]) -> dict[str, set[str]]:
    """``{user: groups to remove}``: pure, from Keycloak's membership and the hub's users."""
    out: dict[str, set[str]] = {}
    for u in hub_users:
        name = u["name"]
        have = set(insitu_groups(u.get("groups") or []))
        keep = {g for g, members in keycloak.items() if name in members}
        lost = have - keep
        if lost:
            out[name] = lost
    return out


class KeycloakSync:
    NEEDED_SCOPES = ("read:users", "read:servers", "servers", "groups")

    def __init__(self, hub: HubAPI, directory: KeycloakDirectory):
        self.hub = hub
        self.directory = directory

    @classmethod
    def from_env(cls, hub: HubAPI) -> "KeycloakSync":
        env = os.environ
        directory = KeycloakDirectory.connect(
            env["KEYCLOAK_URL"], env.get("KEYCLOAK_REALM", "insitu"),
            env["KEYCLOAK_SYNC_CLIENT_ID"], env["KEYCLOAK_SYNC_CLIENT_SECRET"],
        )
        return cls(hub, directory)

    async def run_once(self) -> SyncReport:
        report = SyncReport()
        try:
            keycloak = await asyncio.to_thread(self.directory.membership)
        except Exception as e:
            report.error = f"keycloak: {e}"
            log.error("keycloak sync skipped: %s", report.error)
            return report
        if not any(role in keycloak for role in ROLES):
            report.error = "keycloak: none of the role groups found (wrong realm or client?)"
            log.error("keycloak sync skipped: %s", report.error)
            return report
        try:
            await self.hub.require_scopes(*self.NEEDED_SCOPES)
            users = await self.hub.users()
        except Exception as e:
            report.error = f"hub: {e}"
            log.error("keycloak sync skipped: %s", report.error)
            return report
        by_name = {u["name"]: u for u in users}
        for name, lost in sorted(plan_removals(keycloak, users).items()):
            try:
                for g in sorted(lost):
                    await self.hub.remove_from_group(g, [name])
                    report.removed.append((name, g))
                    log.warning("removed %s from hub group %s (not in Keycloak)", name, g)
                model = await self.hub.user(name) or by_name[name]
                remaining = set(insitu_groups(model.get("groups") or []))
                if not remaining & WORKSPACE_ROLES:
                    targets = sorted((model.get("servers") or {}).keys())
                else:
                    targets = sorted({s for g in lost if project_of(g)
                                      for s in servers_to_stop(model, project=g)})
                for server in targets:
                    if await self.hub.stop_server(name, server):
                        report.stopped.append(f"{name}/{server}")
                        log.warning("stopped server %r of %s: membership withdrawn in Keycloak", server, name)
            except Exception as e:
                log.error("keycloak sync of %s failed: %s (retried next pass)", name, e)
                report.error = f"{name}: {e}"
        return report
