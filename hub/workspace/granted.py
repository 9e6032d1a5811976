"""What this workspace has: its datasets by name, where each is mounted, and the grant it comes through.

Runs inside the workspace (the notebook server answers ``GET {base}insitu/datasets`` with it for
JupyterLab's Datasets panel, ``labapi.py``). Everything comes from what the workspace was given
at start; nothing is asked of a service (the workspace reaches only its own server's hub API):

* the mounted datasets' manifests (``/mnt/datasets/<id>/manifest.json``, read-only, written by
  the dataset service when it built the dataset): name, version, subjects, studies, series,
  files, size, Merkle root (``datasets.list_datasets``);
* the spawner's environment, from the dataset service's session answer (``hub/plan.py``):
  ``INSITU_PROJECT``, ``INSITU_SESSION_ID``, ``INSITU_DATASETS`` (the ids of the session, in
  the order chosen) and ``INSITU_GRANTS`` (per dataset id: the grant that covers it and when
  that grant ends; the name and version the service knows, used only when a manifest has none),
  ``INSITU_DATASETS_BY_NAME`` (per dataset id: its readable folder,
  ``/mnt/datasets/by-name/<slug of name>-v<version>``, which the spawner made as root beside the
  mounts: a symlink to ``../<id>`` in the sandbox, a second read-only mount on Kubernetes;
  ``hub/dataset_names.py``). A readable folder is shown (``name_path``) only when it is the
  dataset's own folder (the same directory as ``/mnt/datasets/<id>``).

A dataset of the session whose folder is missing or unreadable is listed with ``problem`` set,
never left out silently.

In a terminal (a desktop workspace has no JupyterLab): ``insitu-datasets`` (``bin/``) prints the
same, one block per dataset; ``insitu-datasets --json`` the JSON the panel reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Any, Mapping

from .datasets import DEFAULT_MOUNT, MOUNT_ENV, datasets_mount, list_datasets

GRANTS_ENV = "INSITU_GRANTS"  # the name hub/plan.py gives it (GRANTS_ENV there)
BY_NAME_ENV = "INSITU_DATASETS_BY_NAME"  # hub/plan.py's BY_NAME_ENV


def _json_map(environ: Mapping[str, str], name: str, kind: type) -> dict:
    try:
        data = json.loads(environ.get(name) or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, kind)}


def _name_path(path: str, dataset_path: str) -> str:
    """``path`` when it is the dataset's own folder (a link to it, or the same folder mounted again), else ""."""
    try:
        return path if path and os.path.samefile(path, dataset_path) else ""
    except OSError:
        return ""


def _when(value: Any, now: dt.datetime) -> tuple[str, int | None]:
    """("31 March 2027, 00:00 UTC", days left) for an ISO time; ("", None) when there is none."""
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return "", None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    t = t.astimezone(dt.timezone.utc)
    return f"{t.day} {t.strftime('%B %Y, %H:%M')} UTC", (t - now).days


def workspace_datasets(environ: Mapping[str, str] = os.environ, now: dt.datetime | None = None) -> dict:
    """The workspace's datasets for JupyterLab (see the module doc)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    mount = datasets_mount(environ.get(MOUNT_ENV) or DEFAULT_MOUNT)
    grants = _json_map(environ, GRANTS_ENV, dict)
    by_name = _json_map(environ, BY_NAME_ENV, str)
    project = environ.get("INSITU_PROJECT", "")
    in_session = [d for d in (environ.get("INSITU_DATASETS") or "").split(",") if d]
    mounted = {s.dataset_id: s for s in list_datasets(mount)}
    rows = []
    for ds_id in in_session + sorted(set(mounted) - set(in_session)):
        s, g = mounted.get(ds_id), grants.get(ds_id, {})
        expires_text, days_left = _when(g.get("expires_at"), now)
        row = {
            "dataset_id": ds_id,
            "name": (s.name if s else "") or str(g.get("name") or ""),
            "version": str(s.version if s and s.version not in (None, "") else g.get("version") or ""),
            "path": s.path if s else str(mount / ds_id),
            "name_path": _name_path(by_name.get(ds_id, ""), s.path) if s else "",
            "project": project,
            "grant_id": str(g.get("grant_id") or ""),
            "expires_at": str(g.get("expires_at") or ""),
            "expires_text": expires_text,
            "days_left": days_left,
            "problem": "" if s else "not mounted or not readable in this workspace",
        }
        if s:
            row.update(n_subjects=s.n_subjects, n_studies=s.n_studies, n_series=s.n_series, n_files=s.n_files,
                       size=s.size, merkle_root=s.merkle_root)
        rows.append(row)
    return {"project": project, "session_id": environ.get("INSITU_SESSION_ID", ""), "mount": str(mount),
            "lake": environ.get("INSITU_LAKE", ""), "datasets": rows}


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def describe(info: Mapping) -> str:
    """``workspace_datasets()`` as text for a terminal."""
    rows = info.get("datasets") or []
    lines = [f"Project {info.get('project') or '?'}: {_count(len(rows), 'dataset', 'datasets')}, read-only."]
    for r in rows:
        lines += ["", f"{r['name'] or '(no name)'}" + (f" v{r['version']}" if r["version"] else ""),
                  f"  id        {r['dataset_id']}", f"  folder    {r.get('name_path') or r['path']}"]
        if r.get("name_path"):
            lines.append(f"  same as   {r['path']}")
        if "n_studies" in r:
            lines.append(f"  contents  {_count(r['n_subjects'], 'subject', 'subjects')}, "
                         f"{_count(r['n_studies'], 'study', 'studies')}, {_count(r['n_series'], 'series', 'series')}, "
                         f"{_count(r['n_files'], 'file', 'files')}")
        grant = f"project {r['project'] or '?'}" + (f", grant {r['grant_id']}" if r["grant_id"] else "")
        if r["expires_text"]:
            grant += f", until {r['expires_text']} ({_count(max(0, r['days_left']), 'day', 'days')} left)"
        lines.append(f"  access    {grant}")
        if r["problem"]:
            lines.append(f"  problem   {r['problem']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--json"]):
        print("usage: insitu-datasets [--json]", file=sys.stderr)
        return 2
    info = workspace_datasets()
    print(json.dumps(info, indent=2) if argv else describe(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
