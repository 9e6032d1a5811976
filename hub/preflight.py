"""The spawner's own pre-flight check of a workspace pod.

Before the hub asks Kubernetes for a pod it runs the manifest through the same
rules that Kyverno enforces at admission (``kyverno/policies/*.yaml``), so a
pod the policies would refuse is never created, and a bug in the manifest
builder shows up as a clear refusal in the hub rather than as an admission
error. Each rule here mirrors one Kyverno rule, named ``(policy, rule)``
exactly as in the policy files; ``tests/kube/test_kyverno.py`` runs every
``kyverno test`` fixture through this module and asserts the same pass / fail
/ skip results the suites expect.

The module is pure: a pod is a dict (the JSON form of a V1Pod), the session is
the dataset service's answer for the pod's session (``GET /api/sessions/{id}``
or the ``201`` answer of ``POST /api/sessions``, docs/CONTRACTS.md §3), and
nothing touches the network.

Semantics follow Kyverno's: a ``foreach`` whose list is empty, or whose every
element is skipped by its preconditions, is a *skip*; a JMESPath ``a || b``
falls back to ``b`` only when ``a`` is null, false, empty string/list/object
(never for the number 0); ``to_string`` of null is ``"null"``; Kyverno
wildcards are ``*`` and ``?`` only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "PreflightConfig",
    "Violation",
    "PreflightRefused",
    "RULES",
    "WORKSPACE_NAMESPACE_LABEL",
    "evaluate",
    "check_pod",
    "enforce",
    "generated_network_policies",
    "wildcard_match",
]

WORKSPACE_NAMESPACE_LABEL = ("insitu.io/workspaces", "true")
ANN = "insitu.io"


@dataclass(frozen=True)
class PreflightConfig:
    """What the policies pin. The defaults are the values written in
    ``kyverno/policies``; a test keeps the two in step."""

    allowed_images: tuple[str, ...] = (
        "registry.insitu.local/insitu/notebook:*",
        "registry.insitu.local/insitu/desktop:*",
        "registry.insitu.local/insitu/hub:*",  # the gateway sidecar (hub/kube_gateway.py)
    )
    lake_claim: str = "insitu-lake"
    datasets_claim: str = "insitu-datasets"
    volume_types: tuple[str, ...] = ("persistentVolumeClaim", "emptyDir", "configMap")
    primary_gid: int = 100
    min_uid: int = 1000
    forbidden_pod_security_keys: tuple[str, ...] = ("fsGroup", "fsGroupChangePolicy", "sysctls")


@dataclass(frozen=True)
class Violation:
    policy: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.policy}/{self.rule}: {self.message}"


class PreflightRefused(Exception):
    """The pod would be refused at admission; ``violations`` says why."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("; ".join(str(v) for v in violations))


# --- JMESPath-like helpers --------------------------------------------------


def _falsy(v: Any) -> bool:
    return v is None or v is False or v == "" or v == [] or v == {}


def _or(v: Any, default: Any) -> Any:
    return default if _falsy(v) else v


def _to_string(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"))


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def wildcard_match(pattern: str, value: str) -> bool:
    """Kyverno's wildcard match: ``*`` any run of characters, ``?`` one."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, flags=re.DOTALL) is not None


def _containers(pod: Mapping) -> list[Mapping]:
    spec = pod.get("spec") or {}
    out: list[Mapping] = []
    for key in ("ephemeralContainers", "initContainers", "containers"):
        out.extend(c for c in (spec.get(key) or []) if c is not None)
    return out


def _mounts(pod: Mapping) -> list[Mapping]:
    return [m for c in _containers(pod) for m in (c.get("volumeMounts") or []) if m is not None]


def _annotation(pod: Mapping, key: str) -> str | None:
    v = _get(pod, "metadata", "annotations", f"{ANN}/{key}")
    return v if isinstance(v, str) else None


def _split(value: str | None) -> list[str]:
    return (value or "").split(",")


# --- the rules --------------------------------------------------------------
# Each returns (applied, messages): applied False means Kyverno would skip.

Result = tuple[bool, list[str]]


def _allowed_images(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    containers = _containers(pod)
    bad = []
    for c in containers:
        image = c.get("image")
        if not isinstance(image, str) or not any(wildcard_match(p, image) for p in cfg.allowed_images):
            bad.append(f"container {c.get('name')!r} image {image!r} is not an insitu workspace image")
    return bool(containers), bad


def _allowed_volume_types(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    allowed = {"name", *cfg.volume_types}
    bad = []
    for v in _get(pod, "spec", "volumes") or []:
        for k in v or {}:
            if k not in allowed:
                bad.append(f"volume {v.get('name')!r} has type {k!r}")
    return True, bad


def _data_volumes(pod: Mapping, claims: Iterable[str]) -> list[Mapping]:
    claims = set(claims)
    return [
        v
        for v in _get(pod, "spec", "volumes") or []
        if _get(v, "persistentVolumeClaim", "claimName") in claims
    ]


def _data_volumes_read_only(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    vols = _data_volumes(pod, (cfg.lake_claim, cfg.datasets_claim))
    bad = [
        f"volume {v.get('name')!r} (claim {_get(v, 'persistentVolumeClaim', 'claimName')!r}) is not readOnly"
        for v in vols
        if _to_string(_get(v, "persistentVolumeClaim", "readOnly")) != "true"
    ]
    return bool(vols), bad


def _data_mounts_read_only(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    names = {v.get("name") for v in _data_volumes(pod, (cfg.lake_claim, cfg.datasets_claim))}
    mounts = [m for m in _mounts(pod) if m.get("name") in names]
    bad = [
        f"mount of {m.get('name')!r} at {m.get('mountPath')!r} is not readOnly"
        for m in mounts
        if _to_string(m.get("readOnly")) != "true"
    ]
    return bool(mounts), bad


def _dataset_mounts_listed(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    names = {v.get("name") for v in _data_volumes(pod, (cfg.datasets_claim,))}
    listed = [x for x in _split(_annotation(pod, "dataset-ids")) if x != ""]
    mounts = [m for m in _mounts(pod) if m.get("name") in names]
    bad = []
    for m in mounts:
        sub = _or(m.get("subPath"), "")
        if sub not in listed:
            bad.append(f"datasets mount at {m.get('mountPath')!r} has subPath {sub!r}, not a listed dataset")
        if _or(m.get("subPathExpr"), "") != "":
            bad.append(f"datasets mount at {m.get('mountPath')!r} uses subPathExpr")
    return bool(mounts), bad


def _pod_security_context(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    spec = pod.get("spec") or {}
    sc = spec.get("securityContext") or {}
    bad = []
    if _to_string(spec.get("automountServiceAccountToken")) != "false":
        bad.append("automountServiceAccountToken must be false")
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if _to_string(spec.get(k)) == "true":
            bad.append(f"{k} is not allowed")
    if _to_string(sc.get("runAsNonRoot")) != "true":
        bad.append("securityContext.runAsNonRoot must be true")
    uid = _or(sc.get("runAsUser"), 0)
    if not isinstance(uid, (int, float)) or uid < cfg.min_uid:
        bad.append(f"securityContext.runAsUser must be >= {cfg.min_uid}")
    if _to_string(sc.get("runAsGroup")) != str(cfg.primary_gid):
        bad.append(f"securityContext.runAsGroup must be {cfg.primary_gid}")
    if _or(_get(sc, "seccompProfile", "type"), "") != "RuntimeDefault":
        bad.append("securityContext.seccompProfile.type must be RuntimeDefault")
    for k in cfg.forbidden_pod_security_keys:
        if k in sc:
            bad.append(f"securityContext.{k} is not allowed")
    return True, bad


def _container_security_context(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    containers = _containers(pod)
    bad = []
    for c in containers:
        sc = c.get("securityContext") or {}
        n = c.get("name")
        if _to_string(sc.get("allowPrivilegeEscalation")) != "false":
            bad.append(f"container {n!r}: allowPrivilegeEscalation must be false")
        if _to_string(sc.get("privileged")) == "true":
            bad.append(f"container {n!r}: privileged")
        if _to_string(sc.get("runAsNonRoot")) == "false":
            bad.append(f"container {n!r}: runAsNonRoot false")
        uid = _or(sc.get("runAsUser"), cfg.min_uid)
        if not isinstance(uid, (int, float)) or uid < cfg.min_uid:
            bad.append(f"container {n!r}: runAsUser below {cfg.min_uid}")
        if _to_string(sc.get("runAsGroup")) not in ("null", str(cfg.primary_gid)):
            bad.append(f"container {n!r}: runAsGroup must be unset or {cfg.primary_gid}")
        if _or(_get(sc, "seccompProfile", "type"), "RuntimeDefault") != "RuntimeDefault":
            bad.append(f"container {n!r}: seccompProfile must be RuntimeDefault")
        drop = _or(_get(sc, "capabilities", "drop"), [])
        if "ALL" not in (drop if isinstance(drop, list) else []):
            bad.append(f"container {n!r}: capabilities.drop must contain ALL")
        add = _or(_get(sc, "capabilities", "add"), [])
        if len(add) > 0:
            bad.append(f"container {n!r}: capabilities.add is not allowed")
    return bool(containers), bad


def _supplemental_groups_listed(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    groups = _get(pod, "spec", "securityContext", "supplementalGroups") or []
    listed = _split(_annotation(pod, "dataset-gids"))
    bad = [f"supplementalGroup {g} is not listed in {ANN}/dataset-gids" for g in groups if _to_string(g) not in listed]
    return True, bad


def _session_covers_datasets(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    sid = _annotation(pod, "session") or ""
    if not isinstance(session, Mapping):
        session = {"open": False}  # the policy's apiCall default: fail closed
    bad = []
    if sid == "":
        bad.append(f"no {ANN}/session annotation")
    if "session_id" in session and str(session["session_id"]) != sid:
        bad.append("the session answer is for another session")
    if _to_string(session.get("open")) != "true":
        bad.append("the session is not open")
    if _or(session.get("user"), "") != _or(_annotation(pod, "user"), "-"):
        bad.append("the session belongs to another user")
    if _or(session.get("project"), "") != _or(_annotation(pod, "project"), "-"):
        bad.append("the session is for another project")
    datasets = session.get("datasets") or []
    ids = [_get(d, "dataset_id") for d in datasets]
    gids = [_to_string(_get(d, "gid")) for d in datasets]
    for ds in (x for x in _split(_annotation(pod, "dataset-ids")) if x != ""):
        if ds not in ids:
            bad.append(f"dataset {ds!r} is not in the session")
    for g in (x for x in _split(_annotation(pod, "dataset-gids")) if x != ""):
        if g not in gids:
            bad.append(f"gid {g} is not a gid of the session's datasets")
    return True, bad


def _gateway_sidecar(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    """The workspace gateway sidecar (hub/kube_gateway.py) under its own uid, alone with a port."""
    spec = pod.get("spec") or {}
    containers = [c for c in (spec.get("containers") or []) if c is not None]
    gws = [c for c in containers if c.get("name") == "gateway"]
    bad = []
    if len(gws) != 1:
        bad.append(f"{len(gws)} containers named 'gateway' (exactly one is required)")
    gw = gws[0] if gws else {}
    uid = _or(_get(gw, "securityContext", "runAsUser"), 0)
    if not isinstance(uid, (int, float)) or uid < cfg.min_uid:
        bad.append(f"the gateway must run as a uid of at least {cfg.min_uid}")
    if uid == _or(_get(spec, "securityContext", "runAsUser"), -1):
        bad.append("the gateway must not run as the researcher's uid")
    if len(gw.get("volumeMounts") or []) > 0:
        bad.append("the gateway mounts no volume")
    others = [c for c in (spec.get("initContainers") or []) + containers if c and c.get("name") != "gateway"]
    if any(c.get("ports") for c in others):
        bad.append("only the gateway declares a port")
    if _to_string(spec.get("shareProcessNamespace")) == "true":
        bad.append("the pod must not share its process namespace")
    return True, bad


def _container_limits(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    spec = pod.get("spec") or {}
    containers = [c for key in ("initContainers", "containers") for c in (spec.get(key) or []) if c is not None]
    bad = []
    for c in containers:
        limits = _get(c, "resources", "limits") or {}
        for res in ("cpu", "memory"):
            if _falsy(limits.get(res)):
                bad.append(f"container {c.get('name')!r} sets no resources.limits.{res}")
    return bool(containers), bad


def _scratch_size_limited(pod: Mapping, cfg: PreflightConfig, session: Any) -> Result:
    # JMESPath ``volumes[?emptyDir != `null`]``: ``emptyDir: {}`` is selected (and has no limit)
    scratch = [v for v in _get(pod, "spec", "volumes") or [] if isinstance(v, Mapping) and v.get("emptyDir") is not None]
    bad = [f"emptyDir volume {v.get('name')!r} sets no sizeLimit" for v in scratch
           if _falsy(_get(v, "emptyDir", "sizeLimit"))]
    return bool(scratch), bad


RuleFn = Callable[[Mapping, PreflightConfig, Any], Result]

RULES: dict[tuple[str, str], RuleFn] = {
    ("insitu-workspace-images", "allowed-images"): _allowed_images,
    ("insitu-workspace-volumes", "allowed-volume-types"): _allowed_volume_types,
    ("insitu-workspace-volumes", "data-volumes-read-only"): _data_volumes_read_only,
    ("insitu-workspace-volumes", "data-mounts-read-only"): _data_mounts_read_only,
    ("insitu-workspace-volumes", "dataset-mounts-listed"): _dataset_mounts_listed,
    ("insitu-workspace-security", "pod-security-context"): _pod_security_context,
    ("insitu-workspace-security", "container-security-context"): _container_security_context,
    ("insitu-workspace-datasets", "supplemental-groups-listed"): _supplemental_groups_listed,
    ("insitu-workspace-datasets", "session-covers-datasets"): _session_covers_datasets,
    ("insitu-workspace-gateway", "gateway-sidecar"): _gateway_sidecar,
    ("insitu-workspace-limits", "container-limits"): _container_limits,
    ("insitu-workspace-limits", "scratch-size-limited"): _scratch_size_limited,
}


def _in_workspace_namespace(namespace_labels: Mapping[str, str] | None) -> bool:
    if namespace_labels is None:  # the spawner only ever creates pods in a workspace namespace
        return True
    k, v = WORKSPACE_NAMESPACE_LABEL
    return namespace_labels.get(k) == v


def evaluate(
    pod: Mapping,
    policy: str,
    rule: str,
    *,
    config: PreflightConfig | None = None,
    session: Mapping | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> tuple[str, list[str]]:
    """One rule on one pod: ``("pass"|"fail"|"skip", messages)``."""
    fn = RULES[(policy, rule)]
    if pod.get("kind", "Pod") != "Pod" or not _in_workspace_namespace(namespace_labels):
        return "skip", []
    applied, bad = fn(pod, config or PreflightConfig(), session)
    if bad:
        return "fail", bad
    return ("pass" if applied else "skip"), []


def check_pod(
    pod: Mapping,
    *,
    config: PreflightConfig | None = None,
    session: Mapping | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> list[Violation]:
    """Every rule on the pod; the list of violations (empty: admissible)."""
    out: list[Violation] = []
    for (policy, rule) in RULES:
        result, msgs = evaluate(
            pod, policy, rule, config=config, session=session, namespace_labels=namespace_labels
        )
        out.extend(Violation(policy, rule, m) for m in msgs)
    return out


def enforce(pod: Mapping, **kw: Any) -> None:
    """Raise :class:`PreflightRefused` unless the pod passes every rule."""
    violations = check_pod(pod, **kw)
    if violations:
        raise PreflightRefused(violations)


def generated_network_policies(namespace: Mapping) -> list[dict]:
    """What ``insitu-workspace-egress`` generates for a Namespace object."""
    labels = _get(namespace, "metadata", "labels") or {}
    k, v = WORKSPACE_NAMESPACE_LABEL
    if namespace.get("kind") != "Namespace" or labels.get(k) != v:
        return []
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "insitu-default-deny-egress",
                "namespace": namespace["metadata"]["name"],
                "labels": {"app.kubernetes.io/managed-by": "kyverno", "app.kubernetes.io/part-of": "insitu"},
            },
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
        }
    ]
