"""Revocation reconciler: a hub service that stops uncovered workspaces.

Every ``interval`` seconds (default 20) it asks the dataset service for the open
sessions that no grant covers any more (``GET /api/sessions/uncovered``:
revoked or expired grant, invalidated dataset; docs/CONTRACTS.md §3), stops
the servers of those sessions through the JupyterHub REST API, and then closes
the sessions (``DELETE /api/sessions/{id}``, END_SESSION traced by the
service). A server is therefore stopped within ``interval`` + stop time of the
revocation, well inside a minute.

Invariants
- A session is closed only once no server of it is left running: if a stop
  fails or is still pending, the session stays open and is tried again on the
  next pass (closing it first would hide the still-running workspace).
- Which servers belong to a session: the server's ``user_options`` name the
  session (``session_id``) or the project (``project``); a server of that user
  that names neither is stopped too (fail closed), a server naming another
  session or project is left alone.
- If the dataset service or the hub cannot be reached, the pass does nothing
  and logs the error; nothing is closed blindly.

Run as the managed service ``insitu-hub`` (``python -m hub.reconciler``), with
``JUPYTERHUB_API_URL``/``JUPYTERHUB_API_TOKEN`` from the hub and
``INSITU_DATASET_SERVICE_URL`` (``--keycloak-sync`` adds the Keycloak
membership pass of :mod:`hub.keycloak_sync`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from dataclasses import dataclass, field

from hub.stop_notices import post_stop_notice

from hub.servers import server_matches, servers_to_stop  # noqa: F401  (also public here)
from insitu.hubapi import HubAPI, HubAPIError

log = logging.getLogger("insitu.reconciler")

DATASET_SERVICE_PREFIX = "/services/dataset-service"


@dataclass
class PassReport:
    uncovered: int = 0
    stopped: list[str] = field(default_factory=list)   # "user/server"
    closed: list[str] = field(default_factory=list)    # session ids
    kept_open: list[str] = field(default_factory=list)  # session ids whose stop failed
    error: str | None = None


class RevocationReconciler:
    #: what the token must hold to see and stop every user's servers
    NEEDED_SCOPES = ("read:users", "read:servers", "servers")

    def __init__(self, hub: HubAPI, datasets):
        """``datasets``: a :class:`dataset_service.client.DatasetServiceClient`."""
        self.hub = hub
        self.datasets = datasets

    async def run_once(self) -> PassReport:
        report = PassReport()
        try:
            uncovered = await self.datasets.auncovered_sessions()
        except Exception as e:  # the service is down: do nothing this pass
            report.error = f"dataset service: {e}"
            log.error("reconcile pass skipped: %s", report.error)
            return report
        report.uncovered = len(uncovered)
        if uncovered:
            try:
                await self.hub.require_scopes(*self.NEEDED_SCOPES)
            except HubAPIError as e:
                report.error = str(e)
                report.kept_open = [str(s.get("session_id")) for s in uncovered]
                log.error("reconcile pass skipped: %s", e)
                return report
        for s in uncovered:
            sid = str(s.get("session_id"))
            user = s.get("user")
            try:
                model = await self.hub.user(user) if user else None
                all_stopped = True
                if servers_to_stop(model, session_id=sid, project=s.get("project")):
                    # JupyterLab says why and saves before the route goes (hub/stop_notices.py)
                    await post_stop_notice(self.hub, user, sid, s)
                for name in servers_to_stop(model, session_id=sid, project=s.get("project")):
                    ok = await self.hub.stop_server(user, name)
                    if ok:
                        report.stopped.append(f"{user}/{name}")
                        log.warning("stopped server %r of %s: session %s %s", name, user, sid,
                                    s.get("reason", "no longer covered"))
                    all_stopped = all_stopped and ok
                if not all_stopped:
                    report.kept_open.append(sid)
                    continue
                await self.datasets.aclose_session(sid, s.get("end_reason") or "revoked")
                report.closed.append(sid)
                log.warning("closed session %s of %s (%s)", sid, user, s.get("reason", "uncovered"))
            except Exception as e:
                report.kept_open.append(sid)
                log.error("session %s: %s (retried next pass)", sid, e)
        return report


def dataset_service_client(url: str, token: str):
    from dataset_service.client import DatasetServiceClient

    base = url.rstrip("/")
    if not base.endswith(DATASET_SERVICE_PREFIX):
        base += DATASET_SERVICE_PREFIX
    return DatasetServiceClient(base, token)


async def serve(interval: float, keycloak_sync: bool = False, once: bool = False) -> None:
    api_url = os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    ds_url = os.environ.get("INSITU_DATASET_SERVICE_URL", "http://127.0.0.1:8101")
    hub = HubAPI(api_url, token)
    rec = RevocationReconciler(hub, dataset_service_client(ds_url, token))
    kc = None
    if keycloak_sync:
        from hub.keycloak_sync import KeycloakSync

        kc = KeycloakSync.from_env(hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("reconciler: every %.0f s, dataset service %s, keycloak sync %s", interval, ds_url, bool(kc))
    while not stop.is_set():
        report = await rec.run_once()
        if report.stopped or report.closed or report.kept_open:
            log.info("pass: %s", report)
        if kc is not None:
            try:
                await kc.run_once()
            except Exception as e:
                log.error("keycloak sync pass failed: %s", e)
        if once:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hub.reconciler", description=__doc__.split("\n\n")[0])
    p.add_argument("--interval", type=float, default=float(os.environ.get("INSITU_RECONCILE_INTERVAL", 20)))
    p.add_argument("--keycloak-sync", action="store_true", help="also run the Keycloak membership pass")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    asyncio.run(serve(args.interval, args.keycloak_sync, args.once))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
