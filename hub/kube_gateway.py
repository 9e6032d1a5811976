"""The workspace gateway in a Kubernetes pod: a sidecar under another uid.

Every container of a workspace pod would otherwise run as the researcher's
uid, so kernel code could replace the notebook server. The pod therefore has
two containers (``hub.kube`` renders them, ``kyverno/policies/workspace-gateway.yaml``
and ``hub.preflight`` require them):

* ``notebook``: the researcher's server, listening on ``127.0.0.1:8888`` only
  (the pod's loopback), declaring no port;
* ``gateway``: ``python -m hub.gateway`` (``hub/gateway.py``, the same code as
  the local sandbox's gateway) from the hub image, as ``gateway_uid`` (never
  the researcher's), no volumes, no capabilities, read-only root; the only
  declared port, the one the hub and the proxy reach. It authenticates every
  request with the hub's OAuth (the server's own client and token, copied from
  the notebook container's ``JUPYTERHUB_*`` variables) and forwards to
  ``127.0.0.1:8888``; data files in answers are refused and reported. It asks
  the dataset service (``INSITU_GATEWAY_REPORT_URL``, the hub's service token)
  for the owner's export states of the pod's project (``INSITU_PROJECT``), which
  it answers itself on ``{base}insitu/export-status`` (``hub/gateway_exports.py``).

The pod does not share its process namespace (``shareProcessNamespace`` unset):
the notebook container cannot see, signal or trace the gateway. The pod-level
``supplementalGroups`` (dataset gids) also apply to the gateway, which mounts
no volume: they open nothing to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GATEWAY_CONTAINER = "gateway"
NOTEBOOK_PORT = 8888
#: the variables of the notebook container the gateway needs (the server's OAuth client and token; the
#: project, whose export states it answers to JupyterLab's exports panel: hub/gateway_exports.py)
COPIED_ENV = (
    "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_OAUTH_CALLBACK_URL",
    "JUPYTERHUB_HOST", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_USER", "JUPYTERHUB_SERVER_NAME",
    "JUPYTERHUB_BASE_URL", "INSITU_PROJECT",
)


@dataclass(frozen=True)
class GatewayOptions:
    image: str = "registry.insitu.local/insitu/hub:0.1.0"
    uid: int = 199990
    gid: int = 100
    port: int = 8080
    report_url: str = ""  # the dataset service (refusals are traced there)
    report_secret: str = "insitu-gateway"  # Secret with key "token": the hub's service token
    cpu: str = "200m"
    memory: str = "256Mi"


def notebook_args() -> list[str]:
    """Extra arguments of the notebook server: loopback only."""
    return ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={NOTEBOOK_PORT}"]


def gateway_container(session_id: str, opts: GatewayOptions) -> dict[str, Any]:
    """The sidecar, as a container dict (pure)."""
    env = [
        {"name": "INSITU_GATEWAY_PORT", "value": str(opts.port)},
        {"name": "INSITU_GATEWAY_ADDRESS", "value": "0.0.0.0"},
        {"name": "INSITU_GATEWAY_UPSTREAM", "value": f"http://127.0.0.1:{NOTEBOOK_PORT}"},
        {"name": "INSITU_GATEWAY_REPORT_URL", "value": opts.report_url},
        {"name": "INSITU_SESSION_ID", "value": session_id or ""},
        {"name": "INSITU_GATEWAY_REPORT_TOKEN",
         "valueFrom": {"secretKeyRef": {"name": opts.report_secret, "key": "token"}}},
    ]
    return {
        "name": GATEWAY_CONTAINER,
        "image": opts.image,
        "command": ["python", "-m", "hub.gateway"],
        "env": env,
        "ports": [{"name": "gateway", "containerPort": opts.port, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": opts.cpu, "memory": opts.memory},
                      "requests": {"cpu": opts.cpu, "memory": opts.memory}},
        "securityContext": {
            "runAsUser": opts.uid,
            "runAsGroup": opts.gid,
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _get(obj: Any, key: str):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _set(obj: Any, key: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)


def wire(pod: Any) -> Any:
    """Give the sidecar the server's OAuth variables and take the port off the
    notebook container (KubeSpawner declares it there). Works on the V1Pod model
    or its dict form."""
    containers = _get(_get(pod, "spec"), "containers") or []
    gw = [c for c in containers if _get(c, "name") == GATEWAY_CONTAINER]
    nb = [c for c in containers if _get(c, "name") != GATEWAY_CONTAINER]
    if len(gw) != 1 or not nb:
        return pod
    gateway, notebook = gw[0], nb[0]
    copied = [e for e in (_get(notebook, "env") or []) if _get(e, "name") in COPIED_ENV]
    env = list(_get(gateway, "env") or [])
    have = {_get(e, "name") for e in env}
    env += [e for e in copied if _get(e, "name") not in have]
    _set(gateway, "env", env)
    for c in nb:
        _set(c, "ports", None)
    return pod
