"""Creating and building datasets.

``create_dataset(...)`` validates the request, allocates a gid and records the
dataset in state ``building``. Unsafe studies (a folder leaving the lake, a
symbolic link inside) refuse a request that names them, and are left out of a
query or ``all_studies`` selection with the reason in the dataset's report.
Files the indexer skipped are left out of their study, with the reason: a data
manager can build from every study that has readable files; ``build(settings, db, id)`` then writes the tree:

1. take the build lock ``<datasets>/.locks/<id>.lock`` (``flock``; the kernel
   drops it when a builder dies, so a live build is never run twice);
2. remove a temporary folder ``<datasets>/.building-<id>`` left by a crash;
   if ``<datasets>/<id>`` already exists with a complete manifest the crash came
   after the rename: finish the database update only;
3. for every study: check the path (``paths.resolve_study``), check each file
   against the catalogue (size, mtime, inode; a changed or missing file fails
   the build: "re-index the lake"; a file the catalogue does not hold is left
   out, closed to others, and named with its reason in the manifest's
   ``report``), give the study the ACL entries
   ``group:<gid>:r-x`` (folders) / ``r--`` (files), and link
   ``<tmp>/<subject>/<study> -> <lake_mount_path>/<subject>/<study>``;
4. write ``manifest.json`` (rules in ``insitu/manifest.py``) and ``eforms.json``;
5. make the tree read-only for everyone but the dataset's group (folders 0500,
   files 0400 plus ACL ``group:<gid>`` r-x / r--), then ``rename`` it into place;
6. send CREATE_DATASET (the trace is journalled in the dataset's event log before
   the first attempt, so a resend after a crash is the same trace and the tracer
   stores it once), then record state ``draft`` with the Merkle root.

Nothing under ``<datasets>/<id>`` exists before step 5's rename, so a crash at
any point leaves no partial dataset visible. ``BuildRunner.recover()`` (run at
service start) resumes every dataset still in ``building`` whose lock is free,
up to ``MAX_ATTEMPTS`` times, then marks it ``failed``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from . import dataset_tree as tree
from . import traces
from .dataset_tree import BuildError, final_path, tmp_path  # noqa: F401  (re-exported)
from .catalogue import BadQuery
from .db import Database
from insitu.manifest import build_manifest, canonical_json
from .models import (Dataset, DatasetEvent, DatasetState, DatasetStudy, File, IndexSkip, Series, Subject,
                     utcnow)
from .paths import UnsafePath, resolve_study
from .selection import RequestError, resolve_studies, unsafe_studies  # noqa: F401 (re-exported)
from .settings import Settings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def add_event(s, ds: Dataset, actor: str, action: str, detail: dict | None = None) -> DatasetEvent:
    seq = (s.scalar(select(func.max(DatasetEvent.seq)).where(DatasetEvent.dataset_id == ds.id)) or 0) + 1
    ev = DatasetEvent(dataset_id=ds.id, seq=seq, actor=actor, action=action, detail=detail)
    s.add(ev)
    return ev


def _allocate_gid(s, settings: Settings) -> int:
    top = s.scalar(select(func.max(Dataset.gid)))
    if top is None or top < settings.gid_min:
        return settings.gid_min
    if top < settings.gid_max:
        return top + 1
    used = set(s.scalars(select(Dataset.gid)))
    for g in range(settings.gid_min, settings.gid_max + 1):
        if g not in used:
            return g
    raise RequestError("no free POSIX gid left in the configured range", 409)


def create_dataset(settings: Settings, db: Database, *, actor: str, name: str, description: str = "",
                   license: str = "", tags: list[str] | None = None, contact: str = "",
                   previous_id: str | None = None, study_ids: list[str] | None = None,
                   query: dict | None = None, all_studies: bool = False) -> str:
    """Record a new dataset in state ``building``; returns its id (build it next)."""
    for attempt in range(5):
        try:
            with db.session() as s:
                try:
                    ids, left_out = resolve_studies(s, settings, study_ids=study_ids, query=query,
                                                    all_studies=all_studies)
                except BadQuery as e:
                    raise RequestError(str(e)) from None
                version = 1
                if previous_id is not None:
                    prev = s.get(Dataset, previous_id)
                    if prev is None:
                        raise RequestError(f"previous version {previous_id!r} does not exist", 404)
                    if prev.state in (DatasetState.building, DatasetState.failed):
                        raise RequestError(f"previous version {previous_id!r} is {prev.state.value}", 409)
                    version = prev.version + 1
                ds = Dataset(id="ds-" + uuid.uuid4().hex[:16], name=name, version=version,
                             description=description, license=license, tags=list(tags or []), contact=contact,
                             previous_id=previous_id, state=DatasetState.building,
                             gid=_allocate_gid(s, settings), query=query if query is not None else None,
                             created_by=actor, n_studies=len(ids), progress_total=len(ids),
                             build_phase="queued", report={"left_out_studies": left_out, "left_out_files": []})
                s.add(ds)
                s.flush()
                s.execute(DatasetStudy.__table__.insert(), [{"dataset_id": ds.id, "study_id": x} for x in ids])
                add_event(s, ds, actor, "create", {"studies": len(ids), "gid": ds.gid,
                                                   "left_out_studies": len(left_out)})
                return ds.id
        except IntegrityError:  # two creations took the same gid: try again
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- build

def _load_catalogue(s, dataset_id: str):
    rows = s.execute(
        select(Series.study_id, Series.name, Series.modality, Series.body_part, File.path, File.size,
               File.sha256, File.mtime_ns, File.inode)
        .join(File, File.series_id == Series.id)
        .join(DatasetStudy, DatasetStudy.study_id == Series.study_id)
        .where(DatasetStudy.dataset_id == dataset_id)
    )
    studies: dict[str, dict[str, dict]] = defaultdict(dict)
    files: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for study_id, se_name, modality, body, path, size, sha, mtime, ino in rows:
        se = studies[study_id].setdefault(se_name, {"series": se_name, "modality": modality, "body_part": body,
                                                   "files": []})
        rel = path[len(study_id) + 1:]
        se["files"].append((rel, size, sha))
        files[study_id][rel] = (size, mtime, ino)
    return studies, files


ProgressFn = Callable[[int, int, str], None]


def build(settings: Settings, db: Database, dataset_id: str, progress: ProgressFn | None = None) -> str:
    """Build (or resume) a dataset; returns its final state. Never raises for build errors."""
    fd = tree.lock(settings, dataset_id)
    if fd is None:
        return "busy"
    try:
        return _build_locked(settings, db, dataset_id, progress)
    finally:
        os.close(fd)


def _set(db: Database, dataset_id: str, **values) -> None:
    with db.session() as s:
        ds = s.get(Dataset, dataset_id)
        for k, v in values.items():
            setattr(ds, k, v)


def _build_locked(settings: Settings, db: Database, dataset_id: str, progress: ProgressFn | None) -> str:
    with db.session() as s:
        ds = s.get(Dataset, dataset_id)
        if ds is None or ds.state != DatasetState.building:
            return ds.state.value if ds else "missing"
        ds.build_attempts += 1
        ds.build_phase = "preparing"
        ds.progress_done = 0
        meta = dict(name=ds.name, version=ds.version, gid=ds.gid, actor=ds.created_by, attempts=ds.build_attempts)
        study_ids = [x.study_id for x in ds.studies]
    final, tmp = tree.final_path(settings, dataset_id), tree.tmp_path(settings, dataset_id)
    lake = Path(settings.lake_dir)
    gid = meta["gid"]
    try:
        if meta["attempts"] > MAX_ATTEMPTS:
            raise BuildError(f"build did not complete after {MAX_ATTEMPTS} attempts")
        tree.rmtree(tmp)
        if final.exists():
            manifest = _read_final_manifest(final, dataset_id)
            return _finish(settings, db, dataset_id, manifest, meta["actor"], resumed=True)
        with db.session() as s:
            studies, expected = _load_catalogue(s, dataset_id)
            skip_reasons: dict[str, str] = {}
            for k in range(0, len(study_ids), 500):
                skip_reasons.update(s.execute(select(IndexSkip.path, IndexSkip.reason)
                                              .where(IndexSkip.study_id.in_(study_ids[k:k + 500]))).tuples().all())
            report = dict(s.get(Dataset, dataset_id).report or {})
            eforms = {sid: ef for sid, ef in s.execute(
                select(Subject.id, Subject.eform).where(Subject.id.in_({x.split("/")[0] for x in study_ids})))}
        missing = [x for x in study_ids if x not in studies]
        if missing:
            raise BuildError(f"study {missing[0]} is no longer in the catalogue")
        tmp.mkdir(parents=True)
        total = len(study_ids)
        _set(db, dataset_id, build_phase="linking", progress_total=total)
        last = time.monotonic()
        made_subjects = set()
        mount = settings.lake_mount_path.rstrip("/")
        lake_real = os.path.realpath(lake)
        left_out_files: list[dict] = []
        for i, sid in enumerate(study_ids, 1):
            study_dir = resolve_study(lake, sid, lake_real)
            left_out_files += tree.grant_and_check(str(study_dir), gid, expected[sid], settings.apply_acls, sid,
                                               skip_reasons)
            subject, study = sid.split("/")
            if subject not in made_subjects:
                (tmp / subject).mkdir()
                made_subjects.add(subject)
            os.symlink(f"{mount}/{subject}/{study}", tmp / subject / study)
            now = time.monotonic()
            if now - last > 0.5 or i == total:
                last = now
                _set(db, dataset_id, progress_done=i)
                if progress:
                    progress(i, total, "linking")
        report = {"left_out_studies": report.get("left_out_studies", []),
                  "left_out_files": sorted(left_out_files, key=lambda x: x["path"])}
        _set(db, dataset_id, build_phase="manifest", report=report)
        manifest = build_manifest(
            dataset_id=dataset_id, name=meta["name"], version=meta["version"], lake_mount_path=mount,
            studies=[{"subject": sid.split("/")[0], "study": sid.split("/")[1],
                      "series": list(studies[sid].values())} for sid in study_ids], report=report)
        (tmp / "manifest.json").write_bytes(canonical_json(manifest))
        (tmp / "eforms.json").write_bytes(canonical_json({k: eforms.get(k) for k in sorted(made_subjects)}))
        tree.seal(tmp, sorted(made_subjects), ["manifest.json", "eforms.json"], gid, settings.apply_acls)
        os.rename(tmp, final)
        tree.fsync_dir(final.parent)
        return _finish(settings, db, dataset_id, manifest, meta["actor"], resumed=False)
    except Exception as e:  # noqa: BLE001 - every failure is recorded
        reason = str(e) if isinstance(e, (BuildError, UnsafePath, OSError)) else f"{type(e).__name__}: {e}"
        log.warning("build of %s failed: %s", dataset_id, reason)
        try:
            tree.rmtree(tmp)
        except OSError:
            pass
        if final.exists():  # the tree is complete; only the record (or its trace) is missing: retry later
            _set(db, dataset_id, error=f"finishing failed, will be retried: {reason}"[:2000])
            return "building"
        tree.revoke(settings, study_ids, gid)
        with db.session() as s:
            ds = s.get(Dataset, dataset_id)
            ds.state = DatasetState.failed
            ds.build_phase = "failed"
            ds.error = reason[:2000]
            add_event(s, ds, "dataset-service", "build", {"result": "failed", "reason": reason[:500]})
        return "failed"


def _read_final_manifest(final: Path, dataset_id: str) -> dict:
    try:
        m = json.loads((final / "manifest.json").read_bytes())
    except (OSError, ValueError) as e:
        raise BuildError(f"{final} exists but holds no readable manifest ({e}); left untouched") from None
    if m.get("dataset_id") != dataset_id:
        raise BuildError(f"{final} holds the manifest of another dataset; left untouched")
    return m


def _finish(settings: Settings, db: Database, dataset_id: str, manifest: dict, actor: str, resumed: bool) -> str:
    root = manifest["merkle_root"]
    traces.record(settings, "CREATE_DATASET", actor=actor, dataset_id=dataset_id, root=root,
                  details={"version": manifest["version"], "studies": manifest["study_count"],
                           "files": manifest["file_count"]}, key=root,
                  journal=traces.EventJournal(db, dataset_id))  # a resend after a crash is the same trace
    digests = {f"{st['subject']}/{st['study']}": st["digest"] for st in manifest["studies"]}
    with db.session() as s:
        ds = s.get(Dataset, dataset_id)
        ds.merkle_root = root
        ds.n_studies = manifest["study_count"]
        ds.n_files = manifest["file_count"]
        ds.size = manifest["total_size"]
        ds.progress_done = ds.progress_total = manifest["study_count"]
        ds.state = DatasetState.draft
        ds.build_phase = "done"
        ds.error = None
        # one executemany UPDATE, not one ORM object per study
        t = DatasetStudy.__table__
        if digests:
            s.execute(
                update(t).where(t.c.dataset_id == bindparam("b_dataset"), t.c.study_id == bindparam("b_study"))
                .values(digest=bindparam("b_digest")),
                [{"b_dataset": dataset_id, "b_study": k, "b_digest": v} for k, v in digests.items()],
            )
        add_event(s, ds, "dataset-service", "build", {"result": "draft", "merkle_root": root, "resumed": resumed})
    return "draft"


class BuildRunner:
    """Runs builds in a background thread of the service process."""

    def __init__(self, settings: Settings, db: Database, workers: int = 1):
        self.settings, self.db = settings, db
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="dataset-build")
        self._lock = threading.Lock()
        self._pending: dict[str, object] = {}

    def submit(self, dataset_id: str):
        with self._lock:
            fut = self.pool.submit(build, self.settings, self.db, dataset_id)
            self._pending[dataset_id] = fut
            return fut

    def recover(self) -> list[str]:
        """Resume every dataset left in ``building`` (by a crash or a restart)."""
        with self.db.session() as s:
            ids = list(s.scalars(select(Dataset.id).where(Dataset.state == DatasetState.building)))
        for i in ids:
            self.submit(i)
        return ids

    def wait(self, dataset_id: str, timeout: float | None = None):
        fut = self._pending.get(dataset_id)
        return fut.result(timeout) if fut else None

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
