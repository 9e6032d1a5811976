"""The integrity check of a mounted dataset against its manifest (``Dataset.verify``).

Re-reads every file through the dataset's symlinks and compares sizes and SHA-256 digests with the
manifest, checks the study links point where the manifest says the lake is mounted, looks for files
the manifest does not list in the series folders it names, recomputes each study digest from the
manifest's file entries and the Merkle root from the manifest's study digests, with the rules of
``insitu/manifest.py``. Standard library and the core's manifest rules only, as ``datasets.py``.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from insitu.manifest import merkle_root, study_digest

MANIFEST = "manifest.json"  # a dataset's files (docs/CONTRACTS.md §2)
EFORMS = "eforms.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | size | sha256 | unlisted | link | study-digest | merkle-root | eform | manifest
    path: str
    detail: str = ""


@dataclass
class IntegrityReport:
    dataset_id: str
    files_checked: int = 0
    bytes_read: int = 0
    studies_checked: int = 0
    hashes_checked: bool = True
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.kind] = out.get(p.kind, 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        d["counts"] = self.counts()
        return d

    def __str__(self) -> str:
        head = (f"{self.dataset_id}: {'OK' if self.ok else 'FAILED'} — {self.files_checked} files, "
                f"{self.bytes_read / 1e6:.1f} MB read, {self.studies_checked} studies, {self.seconds:.2f} s")
        lines = [head] + [f"  {p.kind:12s} {p.path}  {p.detail}".rstrip() for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  … and {len(self.problems) - 50} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------- hashing
# study_digest and merkle_root are the core's (insitu/manifest.py), imported above.

def file_sha256(path: str | os.PathLike) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, streamed."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def verify_dataset(ds: Any, *, hashes: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> IntegrityReport:
    """Check ``ds`` (a ``datasets.Dataset``) against its manifest; never raises for a bad file."""
    t0 = time.perf_counter()
    rep = IntegrityReport(ds.dataset_id, hashes_checked=hashes)
    add = rep.problems.append
    total = sum(len(st.files) for st in ds.studies)
    mount = ds.lake_mount_path.rstrip("/")
    listed_subjects = {st.subject for st in ds.studies}
    listed_studies = {st.study_id for st in ds.studies}

    # the dataset root and subject folders hold only what the manifest names
    try:
        for entry in sorted(os.listdir(ds.root)):
            if entry in (MANIFEST, EFORMS):
                continue
            if entry not in listed_subjects:
                add(Problem("unlisted", entry, "not a subject of the manifest"))
    except OSError as e:
        add(Problem("missing", ".", f"dataset root cannot be listed: {e}"))
    for subject in sorted(listed_subjects):
        try:
            for entry in sorted(os.listdir(ds.root / subject)):
                if f"{subject}/{entry}" not in listed_studies:
                    add(Problem("unlisted", f"{subject}/{entry}", "not a study of the manifest"))
        except OSError as e:
            add(Problem("missing", subject, f"subject folder cannot be listed: {e}"))

    digests: list[tuple[str, str]] = []
    done = 0
    for st in ds.studies:
        rep.studies_checked += 1
        link = ds.root / st.subject / st.study
        if not link.is_symlink():
            add(Problem("link", st.study_id, "study is not a symlink into the lake"))
        elif mount:
            target = os.readlink(link)
            want = f"{mount}/{st.subject}/{st.study}"
            if posixpath.normpath(target) != want:
                add(Problem("link", st.study_id, f"points to {target}, manifest says {want}"))
        listed_series = {se.series for se in st.series}
        try:
            for entry in sorted(os.listdir(link)):
                if entry not in listed_series:
                    add(Problem("unlisted", f"{st.study_id}/{entry}", "not a series of the manifest"))
        except OSError as e:
            add(Problem("missing", st.study_id, f"study cannot be listed: {e}"))
        for se in st.series:
            names = {posixpath.basename(f.path) for f in se.files}
            try:
                for entry in sorted(os.listdir(ds.series_path(se))):
                    if entry not in names:
                        add(Problem("unlisted", f"{se.series_id}/{entry}", "file not in the manifest"))
            except OSError as e:
                add(Problem("missing", se.series_id, f"series cannot be listed: {e}"))
                continue
            for f in se.files:
                p = ds.root / f.path
                try:
                    if hashes:
                        sha, size = file_sha256(p)
                        rep.bytes_read += size
                    else:
                        sha, size = f.sha256, os.stat(p).st_size
                except FileNotFoundError:
                    add(Problem("missing", f.path, "file not found"))
                    continue
                except OSError as e:
                    add(Problem("missing", f.path, f"cannot be read: {e}"))
                    continue
                rep.files_checked += 1
                if size != f.size:
                    add(Problem("size", f.path, f"{size} bytes, manifest says {f.size}"))
                elif sha != f.sha256:
                    add(Problem("sha256", f.path, f"sha256 {sha[:16]}…, manifest says {f.sha256[:16]}…"))
                done += 1
                if progress is not None:
                    progress(done, total)
        # the study digest follows from the manifest's own file entries
        prefix = st.study_id + "/"
        want_digest = study_digest((f.path[len(prefix):], f.size, f.sha256) for f in st.files)
        if want_digest != st.digest:
            add(Problem("study-digest", st.study_id, f"recomputed {want_digest[:16]}…, manifest says "
                                                     f"{st.digest[:16]}…"))
        # the root is checked over the digests the manifest states: a wrong study digest is
        # reported above, a root that does not follow from the stated digests here
        stated_ok = len(st.digest) == 64 and all(c in "0123456789abcdef" for c in st.digest)
        digests.append((st.study_id, st.digest if stated_ok else want_digest))
    if ds.studies:
        root = merkle_root(digests)
        if root != ds.merkle_root:
            add(Problem("merkle-root", MANIFEST, f"recomputed {root[:16]}…, manifest says "
                                                 f"{ds.merkle_root[:16]}…"))
    for subject in sorted(listed_subjects):
        if subject not in ds.eforms:
            add(Problem("eform", EFORMS, f"no clinical record for {subject}"))
    rep.seconds = time.perf_counter() - t0
    return rep


