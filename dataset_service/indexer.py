"""Indexing the lake into the catalogue.

    stats = index_lake(settings, db)

- Walks ``<lake>/<subject>/<study>/<series>/<instance>`` with ``os.scandir``
  (never following links). Entries off that layout, names that are not plain
  (``paths.NAME_RE``), symbolic links (those pointing out of the lake are named
  so), unreadable and non-DICOM files are reported in ``stats.skipped`` and
  skipped; nothing is fatal. The skipped entries of the last run, with their
  reasons, are kept in ``index_skips``: a dataset leaves those files out and
  says why in its manifest's report (``builder``).
- A DICOM file without Modality is catalogued with the modality ``UNKNOWN``.
- The hash cache is the ``files`` table: a file whose (size, mtime_ns, inode)
  matches its row is neither read nor hashed again.
- New or changed files are read once, hashed (SHA-256) and their header parsed
  (``dicom_header``) in a process pool over all cores (``index_workers``).
- The catalogue is then synchronised in one transaction: only changed rows are
  written; rows of vanished files, series, studies and subjects are deleted.
- Lake permissions (``manage_lake_permissions``): the lake root and subject
  folders become traverse-only for others (o-r, o+x) and study folders closed to
  others (o-rwx): studies are opened only through dataset ACL entries. When the
  service may not chmod, it says so in ``stats.permissions``.

The walk, the eForms and the permissions are in ``lake_walk.py``; hashing, header parsing and the
catalogue's synchronisation are here.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import delete, insert, select, update

from .db import Database
from .dicom_header import NotDicom, read_header
from insitu.manifest import study_digest
from .models import File, IndexRun, IndexSkip, Series, Study, Subject, utcnow
from .lake_walk import IndexStats, fix_lake_permissions, read_eform, scan, skip
from .settings import Settings

FILE_COLS = ("series_id", "size", "mtime_ns", "inode", "sha256", "sop_uid", "modality", "body_part",
             "study_uid", "series_uid", "study_date", "study_description")


def _skip_rows(skipped: list[dict], run_id: int | None) -> list[dict]:
    rows: dict[str, dict] = {}
    for sk in skipped:
        parts = sk["path"].split("/")
        rows.setdefault(sk["path"], {
            "path": sk["path"], "reason": sk["reason"][:2000], "run_id": run_id,
            "study_id": "/".join(parts[:2]) if len(parts) >= 3 else None,
            "link": sk["reason"].startswith("symbolic link")})
    return list(rows.values())


def _record_skips(s, skipped: list[dict], run_id: int | None) -> None:
    """Replace the table of skipped entries: the builder reads the reasons from it."""
    s.execute(delete(IndexSkip))
    rows = _skip_rows(skipped, run_id)
    for i in range(0, len(rows), 5000):
        s.execute(insert(IndexSkip), rows[i:i + 5000])


def _hash_chunk(args):
    lake, paths = args
    out = []
    for rel in paths:
        try:
            with open(os.path.join(lake, rel), "rb") as fh:
                data = fh.read()
        except OSError as e:
            out.append((rel, None, f"unreadable: {e.strerror}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        try:
            hdr = read_header(data)
        except NotDicom as e:
            out.append((rel, None, str(e)))
            continue
        out.append((rel, (digest, len(data), hdr), None))
    return out


def _hash_all(lake: str, todo: list[str], workers: int, progress):
    if not todo:
        return
    chunk = max(1, min(256, len(todo) // (workers * 4) or 1))
    chunks = [(lake, todo[i:i + chunk]) for i in range(0, len(todo), chunk)]
    if workers <= 1 or len(todo) < 64:
        for c in chunks:
            res = _hash_chunk(c)
            progress(len(res))
            yield from res
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        for res in pool.map(_hash_chunk, chunks):
            progress(len(res))
            yield from res


class _Progress:
    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[bold]indexing", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                transient=False)
            self.bar.start()
            self.task = self.bar.add_task("hash", total=None)

    def total(self, n: int):
        if self.bar:
            self.bar.update(self.task, total=n)

    def __call__(self, n: int):
        if self.bar:
            self.bar.advance(self.task, n)

    def close(self):
        if self.bar:
            self.bar.stop()


def index_lake(settings: Settings, db: Database, *, progress: bool | None = None,
               requested_by: str | None = None, run_id: int | None = None) -> IndexStats:
    t0 = time.perf_counter()
    stats = IndexStats()
    lake = Path(settings.lake_dir)
    if not lake.is_dir():
        raise FileNotFoundError(f"lake folder {lake} does not exist")
    lake_real = os.path.realpath(lake)
    if run_id is None:
        with db.session() as s:
            run = IndexRun(requested_by=requested_by)
            s.add(run)
            s.flush()
            run_id = run.id
    subjects, studies, found = scan(lake, stats)
    stats.files_seen = len(found)
    if settings.manage_lake_permissions:
        fix_lake_permissions(lake, subjects, studies, stats)

    with db.session() as s:
        old_files = {r[0]: tuple(r[1:]) for r in s.execute(select(File.path, *[getattr(File, c) for c in FILE_COLS]))}
    new_files: dict[str, tuple] = {}
    todo: list[str] = []
    keys = {}
    for rel, size, mtime, ino in found:
        old = old_files.get(rel)
        if old is not None and old[1] == size and old[2] == mtime and old[3] == ino:
            new_files[rel] = old
            stats.files_cached += 1
        else:
            todo.append(rel)
            keys[rel] = (size, mtime, ino)

    workers = settings.index_workers or os.cpu_count() or 1
    bar = _Progress(sys.stderr.isatty() if progress is None else progress)
    bar.total(len(todo))
    try:
        for rel, res, err in _hash_all(lake_real, todo, workers, bar):
            if err:
                skip(stats, rel, err)
                continue
            digest, nbytes, hdr = res
            size, mtime, ino = keys[rel]
            if nbytes != size:  # changed while we read it: take what we hashed, stat again next run
                mtime, ino = -1, ino
            series_id = rel.rsplit("/", 1)[0]
            new_files[rel] = (series_id, nbytes, mtime, ino, digest, hdr["sop_uid"], hdr["modality"],
                              hdr["body_part"], hdr["study_uid"], hdr["series_uid"], hdr["study_date"],
                              hdr["study_description"])
            stats.files_hashed += 1
            stats.bytes_hashed += nbytes
    finally:
        bar.close()

    # aggregate series, studies, subjects from the files
    by_series: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    for rel, row in new_files.items():
        by_series[row[0]].append((rel, row))
    new_series: dict[str, tuple] = {}
    by_study: dict[str, list[str]] = defaultdict(list)
    for sid, rows in by_series.items():
        study_id, name = sid.rsplit("/", 1)
        first = min(rows)[1]
        new_series[sid] = (study_id, name, first[9], first[6], first[7], len(rows), sum(r[1] for _, r in rows))
        by_study[study_id].append(sid)
    new_studies: dict[str, tuple] = {}
    for study_id, sids in by_study.items():
        subject, name = study_id.split("/")
        files = sorted((rel[len(study_id) + 1:], row[1], row[4]) for sid in sids for rel, row in by_series[sid])
        firsts = [min(by_series[sid])[1] for sid in sorted(sids)]
        modalities = ",".join(sorted({f[6] for f in firsts if f[6]}))
        body = Counter(f[7] for f in firsts if f[7]).most_common(1)
        new_studies[study_id] = (subject, name, firsts[0][8], firsts[0][10], firsts[0][11], modalities,
                                 body[0][0] if body else None, len(sids), len(files),
                                 sum(f[1] for f in files), study_digest(files))
    new_subjects: dict[str, tuple] = {}
    for subj in sorted({v[0] for v in new_studies.values()}):
        ef = read_eform(lake_real, subj, stats)
        g = (lambda k: str(ef.get(k))[:64] if ef and ef.get(k) is not None else None)
        new_subjects[subj] = (json.dumps(ef, sort_keys=True) if ef else None, g("cancer_type"),
                              g("age_group"), g("sex"), g("diagnosis_date"))
    stats.subjects, stats.studies, stats.series = len(new_subjects), len(new_studies), len(new_series)

    with db.session() as s:
        old_series = {r[0]: tuple(r[1:]) for r in s.execute(select(
            Series.id, Series.study_id, Series.name, Series.series_uid, Series.modality, Series.body_part,
            Series.n_files, Series.size))}
        old_studies = {r[0]: tuple(r[1:]) for r in s.execute(select(
            Study.id, Study.subject_id, Study.name, Study.study_uid, Study.study_date, Study.description,
            Study.modalities, Study.body_part, Study.n_series, Study.n_files, Study.size, Study.digest))}
        old_subjects = {r[0]: (json.dumps(r[1], sort_keys=True) if r[1] else None, *r[2:]) for r in s.execute(select(
            Subject.id, Subject.eform, Subject.cancer_type, Subject.age_group, Subject.sex, Subject.diagnosis_date))}

        def changes(old: dict, new: dict):
            gone = [k for k in old if k not in new]
            fresh = [k for k in new if k not in old]
            changed = [k for k in new if k in old and old[k] != new[k]]
            return gone, fresh, changed

        f_gone, f_new, f_chg = changes(old_files, new_files)
        se_gone, se_new, se_chg = changes(old_series, new_series)
        st_gone, st_new, st_chg = changes(old_studies, new_studies)
        su_gone, su_new, su_chg = changes(old_subjects, new_subjects)

        def chunked_delete(model, col, keys):
            for i in range(0, len(keys), 500):
                s.execute(delete(model).where(col.in_(keys[i:i + 500])))
            stats.rows_deleted += len(keys)

        now = utcnow()
        subj_rows = lambda keys: [dict(id=k, eform=json.loads(new_subjects[k][0]) if new_subjects[k][0] else None,
                                       cancer_type=new_subjects[k][1], age_group=new_subjects[k][2],
                                       sex=new_subjects[k][3], diagnosis_date=new_subjects[k][4]) for k in keys]
        st_cols = ("subject_id", "name", "study_uid", "study_date", "description", "modalities", "body_part",
                   "n_series", "n_files", "size", "digest")
        study_rows = lambda keys: [dict(id=k, indexed_at=now, **dict(zip(st_cols, new_studies[k]))) for k in keys]
        se_cols = ("study_id", "name", "series_uid", "modality", "body_part", "n_files", "size")
        series_rows = lambda keys: [dict(id=k, **dict(zip(se_cols, new_series[k]))) for k in keys]
        file_rows = lambda keys: [dict(path=k, **dict(zip(FILE_COLS, new_files[k]))) for k in keys]

        # deletions children first, insertions parents first, updates in place
        chunked_delete(File, File.path, f_gone)
        chunked_delete(Series, Series.id, se_gone)
        chunked_delete(Study, Study.id, st_gone)
        chunked_delete(Subject, Subject.id, su_gone)
        for model, rows in ((Subject, subj_rows(su_new)), (Study, study_rows(st_new)),
                            (Series, series_rows(se_new))):
            if rows:
                s.execute(insert(model), rows)
        for i in range(0, len(f_new), 5000):
            s.execute(insert(File), file_rows(f_new[i:i + 5000]))
        for model, rows in ((Subject, subj_rows(su_chg)), (Study, study_rows(st_chg)),
                            (Series, series_rows(se_chg)), (File, file_rows(f_chg))):
            if rows:
                s.execute(update(model), rows)
        _record_skips(s, stats.skipped, run_id)
        stats.rows_written = sum(map(len, (su_new, st_new, se_new, f_new, su_chg, st_chg, se_chg, f_chg)))
        stats.seconds = round(time.perf_counter() - t0, 3)
        run = s.get(IndexRun, run_id)
        run.finished_at = utcnow()
        run.stats = {k: v for k, v in stats.as_dict().items() if k != "skipped"} | {
            "skipped": stats.skipped[:1000], "skipped_count": len(stats.skipped)}
    return stats
