"""What both workspace spawners share: the options form (the default
``options_form`` of both, a Jinja template: ``hub/templates/options_form.html``,
overridable with ``options_form_template`` / ``options_form_template_paths``),
the dataset session and the workspace plan built from the dataset service's answer.

Used by the local sandbox spawner (``hub/sandbox.py``) and by the KubeSpawner
subclass (``hub/kube.py``)::

    class MySpawner(DatasetSessionMixin, Spawner):
        async def start(self):
            plan = await self.open_dataset_session()   # fail closed
            ... render ``plan`` ...

        async def stop(self, now=False):
            ...
            await self.close_dataset_session()

Invariants
- The form only offers datasets the dataset service lists as usable by the
  user, and only profiles in ``offered_profiles``.
- The plan is rebuilt from the service's session answer, never from the form:
  a form naming a dataset the user may not use is refused by the service
  (403), and an answer that does not match the request (other user, other
  project, other datasets) is refused here.
- Every failure on that path raises :class:`WorkspaceRefused` with a message
  for the user; no workspace starts without an open session.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2
from tornado import web
from traitlets import Bool, Dict, HasTraits, Integer, List, Unicode, default

from dataset_service.client import (
    DatasetServiceClient,
    DatasetServiceError,
    DatasetServiceRejected,
    DatasetServiceUnavailable,
    SessionRefused,
)
from insitu.names import project_of
from hub.plan import DEFAULT_PROFILES, PlanError, PlanSettings, WorkspacePlan, plan_from_session



async def _maybe_await(x):
    import inspect

    return await x if inspect.isawaitable(x) else x


class WorkspaceRefused(web.HTTPError):
    """The workspace may not start; ``str(e)`` is shown to the user.

    An HTTP error with a plain message: JupyterHub re-renders the options form with
    ``jupyterhub_message`` above it (status ``status_code``, a 4xx for what the user
    can change, 503 when a service is down), and its "server not running" page
    shows the same message after a failed start, never a bare 500."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(status_code, None)
        self.message = message
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------


def parse_form(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """Form fields (as JupyterHub passes them: name → list of str) → user_options.

    Field names: ``profile`` (one), ``project`` (one), ``dataset`` (many)."""

    def one(name: str) -> str:
        vals = [v for v in formdata.get(name, []) if v]
        if len(vals) != 1:
            raise WorkspaceRefused(f"choose exactly one {name}")
        return str(vals[0]).strip()

    datasets = [str(v).strip() for v in formdata.get("dataset", []) if str(v).strip()]
    return {"profile": one("profile"), "project": one("project"), "dataset_ids": datasets}


def validate_user_options(options: Mapping[str, Any], offered_profiles: Iterable[str]) -> dict[str, Any]:
    """Check the shape of user_options (from the form or the REST API)."""
    if not isinstance(options, Mapping):
        raise WorkspaceRefused("options must be an object")
    profile = options.get("profile")
    project = options.get("project")
    ids = options.get("dataset_ids", [])
    if not isinstance(profile, str) or profile not in set(offered_profiles):
        raise WorkspaceRefused(f"profile {profile!r} is not offered here")
    if not isinstance(project, str) or not project:
        raise WorkspaceRefused("a project is required")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise WorkspaceRefused("dataset_ids must be a list of dataset ids")
    if len(set(ids)) != len(ids):
        raise WorkspaceRefused("a dataset is chosen twice")
    return {"profile": profile, "project": project, "dataset_ids": list(ids)}


def check_session_answer(session: Mapping[str, Any], user: str, options: Mapping[str, Any]) -> None:
    """The service's answer must be for exactly what was asked."""
    want = sorted(options["dataset_ids"])
    try:
        got = sorted(str(d["dataset_id"]) for d in session["datasets"])
    except (KeyError, TypeError) as e:
        raise WorkspaceRefused(f"the dataset service answered a malformed session ({e})") from e
    if session.get("user") != user or session.get("project") != options["project"] or got != want:
        raise WorkspaceRefused("the dataset service answered a session for something else than was asked")


def _size(n: int) -> str:
    gib = n / 1024**3
    return f"{gib:g} GiB" if gib >= 1 else f"{n / 1024**2:g} MiB"


def profile_description(resources: Any, time_limit_hours: float | None = None) -> str:
    """'2 CPU cores, 8 GiB memory, no GPU' (and the time limit when there is one)."""
    cpu = resources.cpu_limit
    parts = [f"{cpu:g} CPU core{'s' if cpu != 1 else ''}", f"{_size(resources.mem_limit)} memory",
             f"{resources.gpu} GPU" if resources.gpu else "no GPU"]
    if time_limit_hours:
        parts.append(f"stops after {time_limit_hours:g} h")
    return ", ".join(parts)


def readable_date(value: Any) -> str:
    """An ISO time as a person reads it: '3 March 2027' (UTC); unparsable values unchanged."""
    if not value:
        return ""
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return f"{t.day} {t.strftime('%B %Y')}"


FORM_TEMPLATE = "options_form.html"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@functools.lru_cache(maxsize=8)
def _form_environment(paths: tuple[str, ...]) -> jinja2.Environment:
    """Templates from ``paths`` first, then the package's own (as KubeSpawner's profile form)."""
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(list(paths)), jinja2.FileSystemLoader(str(TEMPLATES_DIR))])
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def form_context(usable: list[Mapping[str, Any]], profiles: list[tuple[str, ...]],
                 projects: Iterable[str]) -> dict[str, list]:
    """What the form shows, in order: profiles (name, label[, description]), the user's projects (and those of
    the usable datasets), the usable datasets (rows of ``usable-datasets``) by project, name and id."""
    rows = sorted(usable, key=lambda r: (str(r.get("project")), str(r.get("name")), str(r.get("dataset_id"))))
    return {
        "profiles": [{"name": name, "label": label, "description": desc[0] if desc else ""}
                     for name, label, *desc in profiles],
        "projects": sorted(set(projects) | {str(r.get("project")) for r in usable if r.get("project")}),
        "datasets": [{"id": str(r["dataset_id"]),
                      "label": f"{r.get('name') or r['dataset_id']} v{r.get('version', '')}".strip(),
                      "project": str(r.get("project", "")),
                      "expires": readable_date(r.get("expires_at"))} for r in rows],
    }


def render_form(usable: list[Mapping[str, Any]], profiles: list[tuple[str, ...]], projects: Iterable[str], *,
                template: str = "", template_paths: Iterable[str] = ()) -> str:
    """The options form: ``form_context`` rendered by the Jinja template ``hub/templates/options_form.html``
    (``template``, a template string, wins; ``template_paths`` are searched for that file first)."""
    env = _form_environment(tuple(template_paths))
    tpl = env.from_string(template) if template else env.get_template(FORM_TEMPLATE)
    return tpl.render(**form_context(usable, profiles, projects))


def user_projects(group_names: Iterable[str]) -> list[str]:
    return sorted(p for p in map(project_of, group_names) if p)


# --------------------------------------------------------------------------
# the mixin
# --------------------------------------------------------------------------


class DatasetSessionMixin(HasTraits):
    """Options form + dataset session + workspace plan for a JupyterHub Spawner."""

    dataset_service_url = Unicode(
        "http://127.0.0.1:8101/services/dataset-service",
        config=True,
        help="Base URL of the dataset service API (the part before /api/...).",
    )
    dataset_service_token = Unicode(
        "",
        config=True,
        help="Token the hub presents to the dataset service (the `insitu-hub` service token).",
    )
    dataset_service_timeout = Integer(10, config=True, help="Seconds to wait for the dataset service.")

    offered_profiles = List(
        Unicode(),
        config=True,
        help="Names of the workspace profiles offered in the options form (see hub.plan.DEFAULT_PROFILES).",
    )

    @default("offered_profiles")
    def _default_offered_profiles(self):
        return [p.name for p in DEFAULT_PROFILES]

    options_form_template = Unicode(
        "",
        config=True,
        help="""Jinja template (a string) of the options form; empty: ``options_form.html`` from
        ``options_form_template_paths`` or hub/templates. It gets ``profiles``, ``projects`` and ``datasets``
        (see hub/templates/options_form.html) and is autoescaped.""",
    )
    options_form_template_paths = List(
        Unicode(),
        config=True,
        help="Folders searched for options_form.html before the platform's own (hub/templates).",
    )

    @default("options_form")
    def _default_insitu_options_form(self):
        return self.insitu_options_form

    lake_dir = Unicode("var/lake", config=True, help="The data lake folder on the host (the service's answer wins).")
    lake_mount_path = Unicode("/mnt/datalake", config=True, help="Where workspaces see the lake.")
    datasets_dir = Unicode("var/datasets", config=True, help="The dataset folders on the host.")
    datasets_mount_root = Unicode("/mnt/datasets", config=True, help="Where workspaces see each dataset.")
    home_root = Unicode("var/homes", config=True, help="Folder holding one home folder per user.")
    home_mount_path = Unicode("/home/jovyan", config=True, help="Where the workspace sees its home.")
    uid_min = Integer(200000, config=True, help="Lowest uid given to a workspace user.")
    uid_max = Integer(299999, config=True, help="Highest uid given to a workspace user.")
    uid_map = Dict(config=True, help="Explicit uids by user name (wins over the derived uid).")
    primary_gid = Integer(100, config=True, help="Primary gid of every workspace process (never a dataset gid).")
    min_dataset_gid = Integer(1000, config=True, help="Dataset gids below this are refused.")
    allow_no_datasets = Bool(False, config=True, help="Allow a workspace without any dataset.")

    # state of the current session (persisted by get_state/load_state of the spawner)
    session_id = Unicode(None, allow_none=True)
    plan_json = Unicode(None, allow_none=True)

    # ------------------------------------------------------------------
    def dataset_client(self) -> DatasetServiceClient:
        return DatasetServiceClient(
            self.dataset_service_url, self.dataset_service_token, timeout=self.dataset_service_timeout
        )

    def plan_settings(self) -> PlanSettings:
        return PlanSettings(
            lake_dir=self.lake_dir,
            lake_mount_path=self.lake_mount_path,
            datasets_dir=self.datasets_dir,
            datasets_mount_root=self.datasets_mount_root,
            home_root=self.home_root,
            home_mount_path=self.home_mount_path,
            uid_min=self.uid_min,
            uid_max=self.uid_max,
            uid_map=self.uid_map,
            primary_gid=self.primary_gid,
            min_dataset_gid=self.min_dataset_gid,
            allow_no_datasets=self.allow_no_datasets,
        )

    def _profiles(self) -> list[tuple[str, str, str]]:
        try:
            known = {p.name: p for p in self.plan_settings().profiles}
        except Exception:  # noqa: BLE001 - a bad setting shows up at start, not in the form
            known = {p.name: p for p in DEFAULT_PROFILES}
        out = []
        for n in self.offered_profiles:
            p = known.get(n)
            out.append((n, p.display_name, profile_description(p.resources)) if p else (n, n, ""))
        return out

    def _group_names(self) -> list[str]:
        user = getattr(self, "user", None)
        return [g.name for g in getattr(user, "groups", []) or []]

    # JupyterHub hooks -------------------------------------------------
    async def insitu_options_form(self, spawner=None) -> str:
        """Use as ``options_form`` (a callable): lists only usable datasets."""
        try:
            usable = await self.dataset_client().ausable_datasets(self.user.name)
        except DatasetServiceError as e:
            self.log.warning("dataset service unavailable for the options form: %s", e)
            return "<p>The dataset service cannot be reached; no workspace can start now.</p>"
        return render_form(usable, self._profiles(), user_projects(self._group_names()),
                           template=self.options_form_template, template_paths=self.options_form_template_paths)

    async def options_from_form(self, formdata):
        """The form's choices, checked before anything starts: a plain message in the form
        (JupyterHub shows the form again with it) for what the researcher can correct."""
        options = parse_form(formdata)
        # the names the researcher chose by, kept with the choice for the hub's home (ids stay the key)
        options["dataset_names"] = await self.check_choice(options)
        return options

    async def check_choice(self, options: Mapping[str, Any]) -> dict[str, str]:
        """Refuse what cannot start; the chosen datasets' names ("Name vN") by id."""
        if not options["dataset_ids"] and not self.allow_no_datasets:
            raise WorkspaceRefused("Tick at least one dataset: a workspace opens with the datasets it analyses.")
        try:
            usable = await self.dataset_client().ausable_datasets(self.user.name)
        except DatasetServiceError as e:
            self.log.warning("dataset service unavailable when %s chose a workspace: %s", self.user.name, e)
            raise WorkspaceRefused("The dataset service cannot be reached just now, so no workspace can start. "
                                   "Please try again in a few minutes.", 503) from e
        rows = {(str(r.get("dataset_id")), str(r.get("project"))) for r in usable}
        names = {str(r.get("dataset_id")): str(r.get("name") or r.get("dataset_id")) for r in usable}
        for d in options["dataset_ids"]:
            if (d, options["project"]) in rows:
                continue
            if d in names:
                raise WorkspaceRefused(f"{names[d]} is granted to another of your projects, not to "
                                       f"{options['project']}: choose that project or another dataset.")
            raise WorkspaceRefused(f"Dataset {d} cannot be used any more: its grant has expired or was revoked. "
                                   "Ask for access again in the catalogue.", 403)
        versions = {str(r.get("dataset_id")): r.get("version") for r in usable}
        return {d: f"{names[d]} v{versions[d]}" if versions.get(d) not in (None, "") else names[d]
                for d in options["dataset_ids"]}

    # the session ------------------------------------------------------
    async def open_dataset_session(self) -> WorkspacePlan:
        """Open the session and return the plan built from the answer. Fail closed."""
        options = validate_user_options(self.user_options or {}, self.offered_profiles)
        client = self.dataset_client()
        try:
            session = await client.aopen_session(
                self.user.name, options["project"], options["dataset_ids"], options["profile"]
            )
        except SessionRefused as e:
            refused = ", ".join(f"{r.get('dataset_id')}: {r.get('reason')}" for r in e.refused)
            raise WorkspaceRefused(f"access refused by the dataset service: {e.reason} {refused}".strip(), 403) from e
        except DatasetServiceRejected as e:
            raise WorkspaceRefused(f"the dataset service refused the session ({e.status}): {e.detail}") from e
        except DatasetServiceUnavailable as e:
            self.log.warning("dataset service unavailable at start for %s: %s", self.user.name, e)
            raise WorkspaceRefused("The dataset service cannot be reached just now, so no workspace can start. "
                                   "Please try again in a few minutes.", 503) from e
        except Exception as e:  # anything else: fail closed too
            self.log.error("opening the dataset session of %s failed: %r", self.user.name, e)
            raise WorkspaceRefused("The workspace could not open its dataset session, so it did not start. "
                                   "Please try again in a few minutes.", 503) from e

        sid = session.get("session_id")
        try:
            check_session_answer(session, self.user.name, options)
            plan = plan_from_session(session, options["profile"], self.plan_settings())
        except (WorkspaceRefused, PlanError) as e:
            if sid:
                await self._close_quietly(client, str(sid), "failed_start")
            raise WorkspaceRefused(str(e)) from e
        self.session_id = str(sid)
        self.plan_json = plan.to_json()
        return plan

    async def _close_quietly(self, client: DatasetServiceClient, sid: str, reason: str = "stopped") -> None:
        try:
            await client.aclose_session(sid, reason)
        except Exception as e:  # noqa: BLE001 - logged; the reconciler closes it later
            self.log.error("could not close dataset session %s: %s", sid, e)

    def _end_reason(self) -> str:
        """Why the session ends, from where the hub is: inside ``start()`` it never started."""
        return "failed_start" if getattr(self, "_start_pending", False) else "stopped"

    async def close_dataset_session(self, reason: str | None = None) -> None:
        """Close the session (traced: END_SESSION with ``reason``, or START_FAILED when it never started)."""
        if self.session_id:
            await self._close_quietly(self.dataset_client(), self.session_id, reason or self._end_reason())
        self.session_id = None
        self.plan_json = None

    async def run_post_stop_hook(self):
        """The hub calls this after every stop, also when the server had already exited by itself (then
        ``stop()`` is not called): a session still open here belongs to a workspace that crashed."""
        if self.session_id:
            await self.close_dataset_session("crashed")
        parent = getattr(super(), "run_post_stop_hook", None)
        return await _maybe_await(parent()) if parent else None

    def session_state(self) -> dict:
        return {"session_id": self.session_id, "plan": self.plan_json}

    def load_session_state(self, state: Mapping[str, Any]) -> None:
        self.session_id = state.get("session_id")
        self.plan_json = state.get("plan")
