"""The workspace plan: a pure function from who/what/which datasets to what a
workspace gets.

``build_plan(...)`` turns (user, project, granted datasets, chosen dataset ids,
profile, settings) into a frozen :class:`WorkspacePlan`. The plan is rendered
in two places: by the local sandbox spawner (``hub/sandbox.py``: bubblewrap +
setpriv) and by the KubeSpawner subclass (``hub/kube.py``: pod spec). Nothing
here touches the file system, the network or the clock.

Invariants (each one is checked, and a violation raises :class:`PlanError`):

* every chosen dataset is among the granted ones (for this project, when the
  grant names a project); no dataset is chosen twice; at least one is chosen
  unless ``allow_no_datasets`` is set;
* the profile is one of ``settings.profiles``;
* the uid is the same for the same user name, always inside
  ``[uid_min, uid_max]`` (or taken from ``uid_map``), never below 1000;
* supplementary gids are exactly one per chosen dataset, all distinct, all
  ``>= min_dataset_gid``, none equal to the uid or the primary gid;
* mounts: the lake read-only at its mount path, each chosen dataset folder
  read-only at ``<datasets_mount_root>/<dataset_id>``, and the home of this
  user *and project* (``<home_root>/<user>/<project>``) as the only writable
  mount;
* ``dataset_paths``: each chosen dataset also by name, at
  ``<datasets_mount_root>/by-name/<slug of name>-v<version>`` (``hub/dataset_names.py``: one
  distinct safe component each), which the renderers make link to or mount the same folder;
  no dataset id is ``by-name``;
* dataset ids, user and project names are safe as path components and label
  values are valid Kubernetes label values.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from types import MappingProxyType

from kubespawner.slugs import is_valid_label, safe_slug
from typing import Any, Iterable, Mapping, Sequence

from hub.dataset_names import BY_NAME, readable_paths

__all__ = [
    "PlanError",
    "Resources",
    "Profile",
    "DEFAULT_PROFILES",
    "GrantedDataset",
    "Mount",
    "PlanSettings",
    "WorkspacePlan",
    "build_plan",
    "plan_from_session",
    "derive_uid",
    "label_value",
]

LABEL_PREFIX = "insitu.io"

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SAFE_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


class PlanError(ValueError):
    """The plan cannot be built; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Resources:
    """Compute resources of a workspace. Memory in bytes, CPU in cores."""

    cpu_limit: float
    cpu_guarantee: float
    mem_limit: int
    mem_guarantee: int
    gpu: int = 0
    pids_limit: int = 4096  # processes and threads of the whole workspace
    tmp_limit: int = 1024**3  # bytes of its /tmp (counted in mem_limit too)


@dataclass(frozen=True)
class Profile:
    """A workspace kind offered in the options form."""

    name: str
    display_name: str
    kind: str  # "notebook" or "desktop"
    resources: Resources
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("notebook", "desktop"):
            raise PlanError("bad-profile", f"profile {self.name!r}: kind must be notebook or desktop")
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))


_GiB = 1024**3

DEFAULT_PROFILES: tuple[Profile, ...] = (
    Profile(
        "notebook-cpu",
        "Notebook (CPU)",
        "notebook",
        Resources(cpu_limit=2.0, cpu_guarantee=0.5, mem_limit=8 * _GiB, mem_guarantee=2 * _GiB,
                  pids_limit=2048, tmp_limit=2 * _GiB),
        {"CUDA_VISIBLE_DEVICES": ""},
    ),
    Profile(
        "notebook-gpu",
        "Notebook (GPU)",
        "notebook",
        Resources(cpu_limit=4.0, cpu_guarantee=1.0, mem_limit=16 * _GiB, mem_guarantee=4 * _GiB, gpu=1,
                  pids_limit=4096, tmp_limit=4 * _GiB),
    ),
    Profile(
        "desktop",
        "Remote desktop",
        "desktop",
        Resources(cpu_limit=2.0, cpu_guarantee=0.5, mem_limit=8 * _GiB, mem_guarantee=2 * _GiB,
                  pids_limit=2048, tmp_limit=2 * _GiB),
    ),
)


@dataclass(frozen=True)
class GrantedDataset:
    """A dataset the user may use: a row of ``usable-datasets`` or of a
    session answer (docs/CONTRACTS.md §3). ``path`` is the dataset folder on
    the host; when absent it is ``<settings.datasets_dir>/<dataset_id>``.
    ``project`` None means "granted to the project the session is for"."""

    dataset_id: str
    gid: int
    path: str | None = None
    manifest_root: str = ""
    project: str | None = None
    name: str = ""
    version: str = ""
    grant_id: str = ""
    expires_at: str = ""  # end of the grant that covers the dataset (ISO 8601), when the service says

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "GrantedDataset":
        try:
            gid = int(row["gid"])
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError("bad-dataset", f"dataset row without a usable gid: {row!r}") from e
        return cls(
            dataset_id=str(row["dataset_id"]),
            gid=gid,
            path=row.get("path"),
            manifest_root=str(row.get("manifest_root") or ""),
            project=row.get("project"),
            name=str(row.get("name") or ""),
            version=str(row.get("version") or ""),
            grant_id=str(row.get("grant_id") or ""),
            expires_at=str(row.get("expires_at") or ""),
        )


@dataclass(frozen=True)
class Mount:
    source: str  # path on the host (sandbox) or on the storage (Kubernetes)
    target: str  # path inside the workspace
    read_only: bool
    kind: str  # "lake", "dataset", "home"
    dataset_id: str | None = None


@dataclass(frozen=True)
class PlanSettings:
    """Site settings the plan depends on (set from the spawner's traitlets)."""

    lake_dir: str = "/srv/insitu/lake"
    lake_mount_path: str = "/mnt/datalake"
    datasets_dir: str | None = None
    datasets_mount_root: str = "/mnt/datasets"
    home_root: str = "/srv/insitu/homes"
    home_mount_path: str = "/home/jovyan"
    uid_min: int = 200000
    uid_max: int = 299999
    uid_map: Mapping[str, int] = field(default_factory=dict)
    primary_gid: int = 100
    min_dataset_gid: int = 1000
    profiles: tuple[Profile, ...] = DEFAULT_PROFILES
    allow_no_datasets: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "uid_map", MappingProxyType(dict(self.uid_map)))
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))
        object.__setattr__(self, "profiles", tuple(self.profiles))
        if not (1000 <= self.uid_min <= self.uid_max):
            raise PlanError("bad-settings", "uid range must satisfy 1000 <= uid_min <= uid_max")
        for p in (self.lake_mount_path, self.datasets_mount_root, self.home_mount_path):
            if not p.startswith("/") or ".." in p.split("/"):
                raise PlanError("bad-settings", f"mount path {p!r} must be absolute and normal")

    def profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.profiles)
        raise PlanError("unknown-profile", f"unknown profile {name!r} (known: {known})")


@dataclass(frozen=True)
class WorkspacePlan:
    user: str
    project: str
    session_id: str | None
    profile: str
    kind: str
    uid: int
    gid: int
    supplementary_gids: tuple[int, ...]
    dataset_ids: tuple[str, ...]
    mounts: tuple[Mount, ...]
    home: Mount
    environment: Mapping[str, str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    resources: Resources
    dataset_paths: Mapping[str, str] = field(default_factory=dict)  # id -> readable path (by name)

    @property
    def read_only_mounts(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.read_only)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (used by the golden tests and for logging)."""
        return {
            "user": self.user,
            "project": self.project,
            "session_id": self.session_id,
            "profile": self.profile,
            "kind": self.kind,
            "uid": self.uid,
            "gid": self.gid,
            "supplementary_gids": list(self.supplementary_gids),
            "dataset_ids": list(self.dataset_ids),
            "mounts": [asdict(m) for m in self.mounts],
            "home": asdict(self.home),
            "environment": dict(sorted(self.environment.items())),
            "labels": dict(sorted(self.labels.items())),
            "annotations": dict(sorted(self.annotations.items())),
            "resources": asdict(self.resources),
            "dataset_paths": dict(self.dataset_paths),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def derive_uid(user: str, settings: PlanSettings) -> int:
    """The user's uid: from ``uid_map`` if listed, else a SHA-256 of the name
    reduced into ``[uid_min, uid_max]``. Stable across restarts and hosts."""
    if user in settings.uid_map:
        uid = int(settings.uid_map[user])
        if uid < 1000:
            raise PlanError("bad-uid", f"uid {uid} for {user!r} is below 1000")
        return uid
    span = settings.uid_max - settings.uid_min + 1
    h = int.from_bytes(hashlib.sha256(user.encode("utf-8")).digest()[:8], "big")
    return settings.uid_min + h % span


def label_value(value: str) -> str:
    """A valid Kubernetes label value for ``value``: kubespawner's ``safe_slug`` (itself when already a
    valid label, else a lower-case slug, ``---`` and a hash: a valid value never contains ``--``, so two
    distinct values never share a label)."""
    return safe_slug(value, is_valid=is_valid_label, max_length=63)


def _check_name(kind: str, value: str, pattern: re.Pattern) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value) or value in (".", ".."):
        raise PlanError(f"bad-{kind}", f"{kind} {value!r} is not an acceptable name")


GRANTS_ENV = "INSITU_GRANTS"
BY_NAME_ENV = "INSITU_DATASETS_BY_NAME"  # JSON {dataset id: readable path} (hub/workspace/granted.py)


def session_grants(datasets: Sequence[GrantedDataset]) -> str:
    """What the workspace shows of the session's grants (``$INSITU_GRANTS``): compact JSON
    ``{dataset_id: {grant_id, expires_at, name, version}}`` with the fields the session answer
    gave, or "" when it gave none of them (the dataset's own name and counts are in its manifest)."""
    out = {}
    for g in datasets:
        row = {k: v for k, v in (("grant_id", g.grant_id), ("expires_at", g.expires_at),
                                 ("name", g.name), ("version", g.version)) if v}
        if row:
            out[g.dataset_id] = row
    return json.dumps(out, sort_keys=True, separators=(",", ":")) if out else ""


def build_plan(
    user: str,
    project: str,
    granted: Iterable[GrantedDataset | Mapping[str, Any]],
    chosen: Sequence[str],
    profile: str,
    settings: PlanSettings,
    *,
    session_id: str | None = None,
) -> WorkspacePlan:
    """Build the workspace plan. Raises :class:`PlanError` on any refusal."""
    _check_name("user", user, _SAFE_USER)
    _check_name("project", project, _SAFE_ID)
    if session_id is not None:
        _check_name("session", str(session_id), _SAFE_ID)
        session_id = str(session_id)
    prof = settings.profile(profile)

    if isinstance(chosen, (str, bytes)):
        raise PlanError("bad-request", "chosen dataset ids must be a list, not a string")
    chosen = [str(c) for c in chosen]
    seen: set[str] = set()
    for ds in chosen:
        if ds in seen:
            raise PlanError("duplicate-dataset", f"dataset {ds!r} chosen more than once")
        seen.add(ds)
    if not chosen and not settings.allow_no_datasets:
        raise PlanError("no-datasets", "choose at least one dataset")

    by_id: dict[str, GrantedDataset] = {}
    for row in granted:
        g = row if isinstance(row, GrantedDataset) else GrantedDataset.from_dict(row)
        if g.project is not None and g.project != project:
            continue  # granted to another of the user's projects
        by_id.setdefault(g.dataset_id, g)

    not_granted = [ds for ds in chosen if ds not in by_id]
    if not_granted:
        raise PlanError(
            "not-granted",
            f"dataset(s) {', '.join(map(repr, not_granted))} not granted to project {project!r} for {user!r}",
        )

    uid = derive_uid(user, settings)
    gid = settings.primary_gid
    datasets = [by_id[ds] for ds in chosen]
    gids: list[int] = []
    for g in datasets:
        _check_name("dataset", g.dataset_id, _SAFE_ID)
        if g.dataset_id == BY_NAME:
            raise PlanError("bad-dataset", f"dataset id {BY_NAME!r} is the folder of readable names")
        if g.gid < settings.min_dataset_gid:
            raise PlanError("bad-gid", f"dataset {g.dataset_id!r} has gid {g.gid} below {settings.min_dataset_gid}")
        if g.gid in (uid, gid):
            raise PlanError("bad-gid", f"dataset {g.dataset_id!r} gid {g.gid} collides with the user's uid/gid")
        if g.gid in gids:
            raise PlanError("bad-gid", f"dataset {g.dataset_id!r} shares gid {g.gid} with another chosen dataset")
        gids.append(g.gid)

    mounts = [Mount(settings.lake_dir, settings.lake_mount_path, True, "lake")]
    for g in datasets:
        src = g.path
        if not src:
            if not settings.datasets_dir:
                raise PlanError("bad-dataset", f"no folder known for dataset {g.dataset_id!r}")
            src = f"{settings.datasets_dir.rstrip('/')}/{g.dataset_id}"
        target = f"{settings.datasets_mount_root.rstrip('/')}/{g.dataset_id}"
        mounts.append(Mount(src, target, True, "dataset", g.dataset_id))
    # one home per user and project: a workspace never sees what another project's sessions wrote
    home = Mount(f"{settings.home_root.rstrip('/')}/{user}/{project}", settings.home_mount_path, False, "home")
    mounts.append(home)

    env = {
        **settings.environment,
        **prof.environment,
        "HOME": settings.home_mount_path,
        "INSITU_USER": user,
        "INSITU_PROJECT": project,
        "INSITU_PROFILE": prof.name,
        "INSITU_DATASETS": ",".join(chosen),
        "INSITU_DATASETS_DIR": settings.datasets_mount_root,
        "INSITU_DATASETS_MOUNT": settings.datasets_mount_root,
        "INSITU_LAKE": settings.lake_mount_path,
    }
    if session_id:
        env["INSITU_SESSION_ID"] = session_id
    grants = session_grants(datasets)
    if grants:
        env[GRANTS_ENV] = grants
    by_name = readable_paths(((g.dataset_id, g.name, g.version) for g in datasets), settings.datasets_mount_root)
    if by_name:
        env[BY_NAME_ENV] = json.dumps(by_name, sort_keys=True, separators=(",", ":"))

    labels = {
        "app.kubernetes.io/name": "insitu-workspace",
        "app.kubernetes.io/component": prof.kind,
        f"{LABEL_PREFIX}/user": label_value(user),
        f"{LABEL_PREFIX}/project": label_value(project),
        f"{LABEL_PREFIX}/profile": label_value(prof.name),
        f"{LABEL_PREFIX}/dataset-count": str(len(chosen)),
    }
    if session_id:
        labels[f"{LABEL_PREFIX}/session"] = label_value(session_id)
    annotations = {
        f"{LABEL_PREFIX}/user": user,
        f"{LABEL_PREFIX}/project": project,
        f"{LABEL_PREFIX}/dataset-ids": ",".join(chosen),
        f"{LABEL_PREFIX}/dataset-gids": ",".join(str(x) for x in gids),
        f"{LABEL_PREFIX}/manifest-roots": ",".join(g.manifest_root for g in datasets),
    }
    if session_id:
        annotations[f"{LABEL_PREFIX}/session"] = session_id

    return WorkspacePlan(
        user=user,
        project=project,
        session_id=session_id,
        profile=prof.name,
        kind=prof.kind,
        uid=uid,
        gid=gid,
        supplementary_gids=tuple(gids),
        dataset_ids=tuple(chosen),
        mounts=tuple(mounts),
        home=home,
        environment=MappingProxyType(env),
        labels=MappingProxyType(labels),
        annotations=MappingProxyType(annotations),
        resources=prof.resources,
        dataset_paths=MappingProxyType(by_name),
    )


def plan_from_session(
    session: Mapping[str, Any],
    profile: str,
    settings: PlanSettings,
) -> WorkspacePlan:
    """The plan for an opened session (the ``201`` answer of ``POST
    /api/sessions``). The datasets are exactly those the service granted in
    the session; the lake folder and mount path come from the answer."""
    try:
        datasets = [GrantedDataset.from_dict(d) for d in session["datasets"]]
        user, project, sid = session["user"], session["project"], session["session_id"]
    except (KeyError, TypeError) as e:
        raise PlanError("bad-session", f"malformed session answer: {e}") from e
    overrides = {}
    if session.get("lake_dir"):
        overrides["lake_dir"] = str(session["lake_dir"])
    if session.get("lake_mount_path"):
        overrides["lake_mount_path"] = str(session["lake_mount_path"])
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)
    return build_plan(
        user,
        project,
        datasets,
        [d.dataset_id for d in datasets],
        profile,
        settings,
        session_id=str(sid),
    )
