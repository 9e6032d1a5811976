"""InsituKubeSpawner: the workspace plan rendered as a Kubernetes pod.

``render_plan(plan, options)`` is a pure function from a
:class:`hub.plan.WorkspacePlan` to the KubeSpawner settings that produce the
pod; the spawner applies them, lets KubeSpawner build the manifest, and runs
the manifest through ``hub.preflight`` (the same rules Kyverno enforces at
admission) before anything is sent to the API server.

What the pod gets (invariants, each checked by the golden tests and by the
pre-flight check):

* pod ``securityContext``: ``runAsUser`` = the plan's uid, ``runAsGroup`` =
  the plan's primary gid, ``supplementalGroups`` = exactly the plan's dataset
  gids, ``runAsNonRoot``, seccomp ``RuntimeDefault``, no ``fsGroup``;
* the container: no privilege, ``allowPrivilegeEscalation: false``, every
  capability dropped, read-only root file system (``/tmp`` is an emptyDir);
* no service-account token;
* volumes: the lake claim read-only at the lake mount path, the datasets claim
  read-only, mounted once per chosen dataset with ``subPath: <dataset id>`` at
  ``/mnt/datasets/<id>`` and once more at its readable path (the plan's ``dataset_paths``:
  ``/mnt/datasets/by-name/<slug>-v<version>``, ``hub/dataset_names.py``; a second read-only
  mount rather than a symlink: no init step, the mount points are made by the runtime in the
  read-only root file system, and Kyverno's rules for dataset mounts hold for it unchanged);
  the homes claim writable with ``subPath: <user>/<project>`` (one home per
  user and project); nothing else;
* labels and annotations from the plan (user, project, profile, session,
  dataset ids and gids, manifest roots);
* profiles: ``notebook-cpu``, ``notebook-gpu`` (``nvidia.com/gpu`` limit, or a
  time-sliced or MIG resource by configuration, with node selector and
  tolerations), ``desktop`` (the desktop image, VNC on ``desktop_vnc_port``,
  registered with Guacamole on start and removed on stop).

The session with the dataset service is opened and closed by
``hub.spawner_base.DatasetSessionMixin`` (shared with the local sandbox
spawner): no pod is built without an open session, and a forged profile or
dataset is refused there, before any manifest exists.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlparse

from kubernetes_asyncio.client.api_client import ApiClient
from kubespawner import KubeSpawner
from traitlets import Dict, Enum, Integer, List, Unicode

from hub import kube_gateway, preflight
from hub.guacamole import GuacamoleClient, GuacamoleError
from hub.plan import WorkspacePlan
from hub.spawner_base import DatasetSessionMixin, WorkspaceRefused

__all__ = ["KubeOptions", "render_plan", "session_view", "pod_manifest_dict", "InsituKubeSpawner"]


@dataclass(frozen=True)
class KubeOptions:
    """Site choices for rendering (set from the spawner's traitlets)."""

    notebook_image: str = "registry.insitu.local/insitu/notebook:0.1.0"
    desktop_image: str = "registry.insitu.local/insitu/desktop:0.1.0"
    lake_claim: str = "insitu-lake"
    datasets_claim: str = "insitu-datasets"
    home_claim: str = "insitu-homes"
    notebook_cmd: tuple[str, ...] = ("jupyterhub-singleuser",)
    desktop_cmd: tuple[str, ...] = ("insitu-desktop",)
    desktop_vnc_port: int = 5901
    gpu_sharing: str = "exclusive"  # exclusive | time-slicing | mig
    gpu_mig_profile: str = "1g.10gb"
    gpu_shared_resource: str = "nvidia.com/gpu.shared"
    gpu_node_selector: Mapping[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    gpu_tolerations: tuple[Mapping[str, Any], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    tmp_size: str = "2Gi"
    gateway: kube_gateway.GatewayOptions = field(default_factory=kube_gateway.GatewayOptions)

    def gpu_resource(self) -> str:
        if self.gpu_sharing == "exclusive":
            return "nvidia.com/gpu"
        if self.gpu_sharing == "time-slicing":
            return self.gpu_shared_resource
        if self.gpu_sharing == "mig":
            return f"nvidia.com/mig-{self.gpu_mig_profile}"
        raise ValueError(f"unknown gpu_sharing {self.gpu_sharing!r}")


def render_plan(plan: WorkspacePlan, opts: KubeOptions, *, vnc_password: str | None = None) -> dict[str, Any]:
    """KubeSpawner trait values for ``plan`` (pure)."""
    vols = [
        {"name": "lake", "persistentVolumeClaim": {"claimName": opts.lake_claim, "readOnly": True}},
        {"name": "home", "persistentVolumeClaim": {"claimName": opts.home_claim}},
        {"name": "tmp", "emptyDir": {"sizeLimit": opts.tmp_size}},
    ]
    mounts: list[dict[str, Any]] = []
    writable = []
    for m in plan.mounts:
        if m.kind == "lake":
            if not m.read_only:  # a real check: asserts vanish under python -O
                raise WorkspaceRefused("the lake must be mounted read-only")
            mounts.append({"name": "lake", "mountPath": m.target, "readOnly": True})
        elif m.kind == "dataset":
            if not (m.read_only and m.dataset_id):
                raise WorkspaceRefused(f"dataset mount {m.target!r} must be read-only and name its dataset")
            mounts.append({"name": "datasets", "mountPath": m.target, "subPath": m.dataset_id, "readOnly": True})
        elif m.kind == "home":
            writable.append(m)
            # one home per user and project (hub/plan.py): <homes claim>/<user>/<project>
            mounts.append({"name": "home", "mountPath": m.target, "subPath": f"{plan.user}/{plan.project}"})
        else:
            raise WorkspaceRefused(f"unknown mount kind {m.kind!r}")
    for ds, path in sorted(plan.dataset_paths.items(), key=lambda x: x[1]):  # the datasets by name
        if ds not in plan.dataset_ids:
            raise WorkspaceRefused(f"readable path {path!r} names dataset {ds!r}, which the plan does not mount")
        mounts.append({"name": "datasets", "mountPath": path, "subPath": ds, "readOnly": True})
    if len(writable) != 1 or writable[0] != plan.home:
        raise WorkspaceRefused("the plan must have exactly one writable mount, the home")
    if any(m.get("subPath") for m in mounts if m["name"] == "datasets"):
        vols.insert(1, {"name": "datasets", "persistentVolumeClaim": {"claimName": opts.datasets_claim, "readOnly": True}})
    mounts.append({"name": "tmp", "mountPath": "/tmp"})

    # KubeSpawner expands every environment value as a str.format template ({username} …); the
    # plan's values are literal (e.g. $INSITU_GRANTS is JSON), so their braces are escaped
    env = {k: v.replace("{", "{{").replace("}", "}}") for k, v in plan.environment.items()}
    if plan.kind == "desktop":
        image, cmd, port = opts.desktop_image, list(opts.desktop_cmd), 8888
        env["INSITU_VNC_PORT"] = str(opts.desktop_vnc_port)
        if vnc_password is not None:
            env["INSITU_VNC_PASSWORD"] = vnc_password
    else:
        image, cmd, port = opts.notebook_image, list(opts.notebook_cmd), 8888

    r = plan.resources
    # the server listens on the pod's loopback; the hub and the proxy reach the gateway's port
    cmd = cmd + kube_gateway.notebook_args()
    port = opts.gateway.port
    settings: dict[str, Any] = {
        "image": image,
        "cmd": cmd,
        "port": port,
        "uid": plan.uid,
        "gid": plan.gid,
        "fs_gid": None,
        "supplemental_gids": list(plan.supplementary_gids),
        "privileged": False,
        "allow_privilege_escalation": False,
        "pod_security_context": {
            "runAsUser": plan.uid,
            "runAsGroup": plan.gid,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "container_security_context": {
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "automount_service_account_token": False,
        "service_account": None,
        "volumes": vols,
        "volume_mounts": mounts,
        "environment": env,
        "extra_labels": dict(plan.labels),
        "extra_annotations": dict(plan.annotations),
        "cpu_limit": r.cpu_limit,
        "cpu_guarantee": r.cpu_guarantee,
        "mem_limit": r.mem_limit,
        "mem_guarantee": r.mem_guarantee,
        "extra_resource_limits": {},
        "extra_resource_guarantees": {},
        "node_selector": {},
        "tolerations": [],
        "init_containers": [],
        # the authenticating hop in front of the server, under another uid (hub/kube_gateway.py)
        "extra_containers": [kube_gateway.gateway_container(plan.session_id or "", opts.gateway)],
        "lifecycle_hooks": {},
        "storage_pvc_ensure": False,
    }
    if r.gpu:
        res = opts.gpu_resource()
        settings["extra_resource_limits"] = {res: str(r.gpu)}
        settings["extra_resource_guarantees"] = {res: str(r.gpu)}
        settings["node_selector"] = dict(opts.gpu_node_selector)
        settings["tolerations"] = [dict(t) for t in opts.gpu_tolerations]
    else:
        settings["environment"].setdefault("CUDA_VISIBLE_DEVICES", "")
    return settings


class _Sanitizer:
    """ApiClient's serializer without an ApiClient (which would open an HTTP session)."""

    PRIMITIVE_TYPES = ApiClient.PRIMITIVE_TYPES
    NATIVE_TYPES_MAPPING = getattr(ApiClient, "NATIVE_TYPES_MAPPING", {})
    sanitize_for_serialization = ApiClient.sanitize_for_serialization


_SANITIZER = _Sanitizer()


def pod_manifest_dict(pod: Any) -> dict[str, Any]:
    """The JSON form of a V1Pod model (as sent to the API server)."""
    manifest = _SANITIZER.sanitize_for_serialization(pod)
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    return manifest


def session_view(plan: WorkspacePlan) -> dict[str, Any]:
    """The session as the dataset service holds it, as far as the plan
    (built from the service's answer) knows it: what the pre-flight check
    compares the pod's annotations with."""
    gids = dict(zip(plan.dataset_ids, plan.supplementary_gids))
    return {
        "session_id": plan.session_id,
        "open": plan.session_id is not None,
        "user": plan.user,
        "project": plan.project,
        "datasets": [{"dataset_id": d, "gid": gids[d]} for d in plan.dataset_ids],
    }


class InsituKubeSpawner(DatasetSessionMixin, KubeSpawner):
    """KubeSpawner that renders the insitu workspace plan."""

    notebook_image = Unicode(
        KubeOptions.notebook_image, config=True, help="Image of notebook workspaces (must be allowed by kyverno/)."
    )
    desktop_image = Unicode(
        KubeOptions.desktop_image, config=True, help="Image of desktop workspaces (must be allowed by kyverno/)."
    )
    lake_claim_name = Unicode(KubeOptions.lake_claim, config=True, help="PVC holding the data lake (ReadOnlyMany).")
    datasets_claim_name = Unicode(
        KubeOptions.datasets_claim, config=True, help="PVC holding the dataset folders (ReadOnlyMany)."
    )
    home_claim_name = Unicode(
        KubeOptions.home_claim, config=True, help="PVC holding one home folder per user (ReadWriteMany)."
    )
    desktop_vnc_port = Integer(5901, config=True, help="Port of the VNC server in desktop pods (reached by guacd).")
    gpu_sharing = Enum(
        ["exclusive", "time-slicing", "mig"],
        "exclusive",
        config=True,
        help="How GPUs are handed out: whole GPUs (nvidia.com/gpu), time-sliced replicas "
        "(gpu_shared_resource) or MIG slices (nvidia.com/mig-<gpu_mig_profile>).",
    )
    gpu_mig_profile = Unicode("1g.10gb", config=True, help="MIG profile requested when gpu_sharing is 'mig'.")
    gpu_shared_resource = Unicode(
        "nvidia.com/gpu.shared",
        config=True,
        help="Extended resource of time-sliced GPUs (the GPU operator's renamed resource).",
    )
    gpu_node_selector = Dict(
        {"nvidia.com/gpu.present": "true"}, config=True, help="Node selector of GPU workspaces."
    )
    gpu_tolerations = List(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        config=True,
        help="Tolerations of GPU workspaces (for tainted GPU nodes).",
    )
    guacamole_url = Unicode("", config=True, help="Root URL of the Guacamole web application (desktop profile).")
    guacamole_username = Unicode("", config=True, help="Guacamole account the hub uses to manage connections.")
    guacamole_password = Unicode("", config=True, help="Password of that account.")
    guacamole_connection = Unicode(None, allow_none=True)

    def kube_options(self) -> KubeOptions:
        return KubeOptions(
            notebook_image=self.notebook_image,
            desktop_image=self.desktop_image,
            lake_claim=self.lake_claim_name,
            datasets_claim=self.datasets_claim_name,
            home_claim=self.home_claim_name,
            desktop_vnc_port=self.desktop_vnc_port,
            gpu_sharing=self.gpu_sharing,
            gpu_mig_profile=self.gpu_mig_profile,
            gpu_shared_resource=self.gpu_shared_resource,
            gpu_node_selector=dict(self.gpu_node_selector),
            gpu_tolerations=tuple(dict(t) for t in self.gpu_tolerations),
        )

    def preflight_config(self) -> preflight.PreflightConfig:
        return preflight.PreflightConfig(
            lake_claim=self.lake_claim_name,
            datasets_claim=self.datasets_claim_name,
            primary_gid=self.primary_gid,
        )

    def apply_plan(self, plan: WorkspacePlan, vnc_password: str | None = None) -> None:
        self._insitu_plan = plan
        for name, value in render_plan(plan, self.kube_options(), vnc_password=vnc_password).items():
            setattr(self, name, value)

    async def get_pod_manifest(self):
        plan = getattr(self, "_insitu_plan", None)
        if plan is None:
            raise WorkspaceRefused("no workspace plan: the dataset session was not opened")
        pod = kube_gateway.wire(await super().get_pod_manifest())
        manifest = pod_manifest_dict(pod)
        try:
            preflight.enforce(manifest, config=self.preflight_config(), session=session_view(plan))
        except preflight.PreflightRefused as e:
            raise WorkspaceRefused(f"the workspace pod would be refused at admission: {e}") from e
        return pod

    async def start(self):
        plan = await self.open_dataset_session()  # fail closed; forged options refused here
        try:
            vnc_password = secrets.token_urlsafe(18) if plan.kind == "desktop" else None
            self.apply_plan(plan, vnc_password)
            url = await super().start()
            if plan.kind == "desktop":
                await self._register_desktop(plan, url, vnc_password)
            return url
        except BaseException:
            await self.close_dataset_session()
            raise

    async def _register_desktop(self, plan: WorkspacePlan, url: Any, vnc_password: str | None) -> None:
        if not self.guacamole_url:
            raise WorkspaceRefused("desktop workspaces need Guacamole (guacamole_url is not set)")
        host = url[0] if isinstance(url, tuple) else urlparse(str(url)).hostname
        name = f"insitu-desktop-{plan.user}-{plan.session_id}"
        client = GuacamoleClient(self.guacamole_url, self.guacamole_username, self.guacamole_password)
        try:
            self.guacamole_connection = await client.create_desktop_connection(
                name, plan.user, host, self.desktop_vnc_port, vnc_password or ""
            )
        except GuacamoleError as e:
            await KubeSpawner.stop(self, now=True)
            raise WorkspaceRefused(f"the desktop could not be registered with Guacamole: {e}") from e

    async def stop(self, now=False):
        try:
            if self.guacamole_connection and self.guacamole_url:
                try:
                    await GuacamoleClient(
                        self.guacamole_url, self.guacamole_username, self.guacamole_password
                    ).delete_connection(self.guacamole_connection)
                    self.guacamole_connection = None
                except GuacamoleError as e:
                    self.log.error("could not delete Guacamole connection %s: %s", self.guacamole_connection, e)
            await super().stop(now=now)
        finally:
            await self.close_dataset_session()

    def get_state(self):
        state = super().get_state()
        state.update(self.session_state())
        if self.guacamole_connection:
            state["guacamole_connection"] = self.guacamole_connection
        return state

    def load_state(self, state):
        super().load_state(state)
        self.load_session_state(state)
        self.guacamole_connection = state.get("guacamole_connection")

    def clear_state(self):
        super().clear_state()
        self.guacamole_connection = None
