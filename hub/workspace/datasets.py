"""The datasets mounted in a workspace, as MONAI-ready items.

Runs inside the workspace's notebook kernel. Standard library and the core's
manifest rules only: it reads ``manifest.json`` and ``eforms.json`` of each
dataset (docs/CONTRACTS.md §2) and never walks the lake — every path it hands out comes from the manifest.

    >>> from insitu_workspace.datasets import list_datasets, open_dataset   # in a workspace
    >>> # (hub.workspace.datasets in a checkout of the repository)
    >>> [d.dataset_id for d in list_datasets()]          # what is mounted
    >>> ds = open_dataset()                               # the only one, or open_dataset("ds-…")
    >>> ds = open_dataset("lung-ct-demo-v1")              # or by its readable name (by-name/, below)
    >>> items = ds.items(label="cancer_type")             # one dict per series
    >>> items[0]["image"]                                 # series folder, for LoadImage(reader=SeriesReader())
    >>> # SeriesReader: insitu_workspace.monai_reader, MONAI's PydicomReader made faster (same output)
    >>> report = ds.verify()                              # integrity against the manifest

Where datasets are mounted: ``/mnt/datasets/<dataset-id>`` by default, or the
folder named by the environment variable ``INSITU_DATASETS_MOUNT``. Each is also at
``/mnt/datasets/by-name/<slug of its name>-v<version>`` (made by the spawner, read-only; two
datasets whose names give the same slug both get ``--<dataset id>`` appended): the same folder,
whichever path is used (a dataset's id is the one in its manifest).

An item (``Dataset.items``) is a flat dict that MONAI's dictionary transforms and
``list_data_collate`` accept as is:

``image``        the series folder ``<dataset root>/<subject>/<study>/<series>``
                 (through the study symlink), what ``LoadImage(reader=SeriesReader())``
                 (``monai_reader.py``) or ``LoadImage(reader="PydicomReader")`` reads as one 3-D series;
``label``        only when a label is asked for: the eForm value, or its class
                 index when ``classes`` is given;
``dataset_id``, ``subject``, ``study``, ``series``, ``study_id``, ``series_id``,
``modality``, ``body_part``, ``n_files``, ``size``: metadata from the manifest;
``files``        only with ``include_files=True``: the series' files (paths from
                 the manifest), sorted by path.

The integrity check (``Dataset.verify``) re-reads every file through the
dataset's symlinks and compares sizes and SHA-256 digests with the manifest,
checks the study links point where the manifest says the lake is mounted,
looks for files the manifest does not list in the series folders it names,
recomputes each study digest from the manifest's file entries and the Merkle
root from the manifest's study digests, with the rules of ``insitu/manifest.py``
(the core's standard-library module, which a workspace carries beside this
library: one implementation of the rules, the one the dataset service builds with).
"""
from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

# the core's rules, bound beside this package in a workspace (hub/sandbox_workspace.py, the images)
from insitu.manifest import merkle_root, study_digest  # noqa: F401  (also public here)

from .integrity import EFORMS, MANIFEST, IntegrityReport, Problem, file_sha256, verify_dataset  # noqa: F401  (public here)

DEFAULT_MOUNT = "/mnt/datasets"
MOUNT_ENV = "INSITU_DATASETS_MOUNT"
BY_NAME = "by-name"  # the readable names beside the mounts (hub/dataset_names.py)
MANIFEST_FORMAT = "insitu-manifest/1"


class DatasetError(Exception):
    """A dataset that cannot be opened: missing, unreadable or malformed manifest."""


# --------------------------------------------------------------------------- model

@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the dataset root
    size: int
    sha256: str


@dataclass(frozen=True)
class Series:
    subject: str
    study: str
    series: str
    modality: str
    body_part: str
    files: tuple[FileEntry, ...]

    @property
    def study_id(self) -> str:
        return f"{self.subject}/{self.study}"

    @property
    def series_id(self) -> str:
        return f"{self.subject}/{self.study}/{self.series}"

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Study:
    subject: str
    study: str
    digest: str
    series: tuple[Series, ...]

    @property
    def study_id(self) -> str:
        return f"{self.subject}/{self.study}"

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({s.modality for s in self.series if s.modality}))

    @property
    def files(self) -> tuple[FileEntry, ...]:
        return tuple(f for s in self.series for f in s.files)


@dataclass(frozen=True)
class DatasetSummary:
    dataset_id: str
    name: str
    version: Any
    path: str
    n_subjects: int
    n_studies: int
    n_series: int
    n_files: int
    size: int
    merkle_root: str


# --------------------------------------------------------------------------- helpers

def datasets_mount(mount: str | os.PathLike | None = None) -> Path:
    """The folder where this workspace's datasets are mounted."""
    return Path(mount if mount is not None else os.environ.get(MOUNT_ENV) or DEFAULT_MOUNT)


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} cannot be read: {e}") from None


def _safe_part(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value \
            or "\x00" in value:
        raise DatasetError(f"manifest: bad {what} {value!r}")
    return value


def _flatten(record: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _lookup(record: Mapping, dotted: str) -> Any:
    cur: Any = record
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def _parse_studies(manifest: Mapping) -> list[Study]:
    raw = manifest.get("studies")
    if not isinstance(raw, list):
        raise DatasetError("manifest: 'studies' must be a list")
    studies = []
    seen: set[str] = set()
    for st in raw:
        if not isinstance(st, Mapping):
            raise DatasetError("manifest: a study must be an object")
        subject = _safe_part(st.get("subject"), "subject")
        study = _safe_part(st.get("study"), "study")
        if f"{subject}/{study}" in seen:
            raise DatasetError(f"manifest: study {subject}/{study} listed twice")
        seen.add(f"{subject}/{study}")
        series = []
        for se in st.get("series") or []:
            name = _safe_part(se.get("series"), "series")
            prefix = f"{subject}/{study}/{name}/"
            files = []
            for f in se.get("files") or []:
                p = f.get("path")
                if not isinstance(p, str) or not p.startswith(prefix) or posixpath.normpath(p) != p \
                        or "/" in p[len(prefix):] or p.endswith("/") or "\x00" in p:
                    raise DatasetError(f"manifest: file path {p!r} is not inside series {prefix}")
                size, sha = f.get("size"), f.get("sha256")
                if not isinstance(size, int) or size < 0 or not isinstance(sha, str) or len(sha) != 64:
                    raise DatasetError(f"manifest: bad size or sha256 for {p}")
                files.append(FileEntry(p, size, sha.lower()))
            series.append(Series(subject, study, name, str(se.get("modality") or ""),
                                 str(se.get("body_part") or ""),
                                 tuple(sorted(files, key=lambda e: e.path))))
        studies.append(Study(subject, study, str(st.get("digest") or ""), tuple(series)))
    return studies


# --------------------------------------------------------------------------- dataset

class Dataset:
    """One dataset folder: its manifest, its eForms, its studies and series."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.manifest: dict = _read_json(self.root / MANIFEST)
        if not isinstance(self.manifest, dict):
            raise DatasetError(f"{self.root / MANIFEST}: not a JSON object")
        fmt = self.manifest.get("format")
        if fmt is not None and fmt != MANIFEST_FORMAT:
            raise DatasetError(f"{self.root / MANIFEST}: unknown format {fmt!r}")
        eforms_path = self.root / EFORMS
        self.eforms: dict = _read_json(eforms_path) if eforms_path.exists() else {}
        if not isinstance(self.eforms, dict):
            raise DatasetError(f"{eforms_path}: not a JSON object")
        self.studies: list[Study] = _parse_studies(self.manifest)

    # identity -----------------------------------------------------------
    @property
    def dataset_id(self) -> str:
        return str(self.manifest.get("dataset_id") or self.root.name)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or "")

    @property
    def version(self) -> Any:
        return self.manifest.get("version")

    @property
    def merkle_root(self) -> str:
        return str(self.manifest.get("merkle_root") or "")

    @property
    def lake_mount_path(self) -> str:
        return str(self.manifest.get("lake_mount_path") or "")

    def __repr__(self) -> str:
        return f"<Dataset {self.dataset_id} {self.name!r} v{self.version}: {len(self.studies)} studies>"

    # contents -----------------------------------------------------------
    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.studies})

    @property
    def series(self) -> list[Series]:
        return [se for st in self.studies for se in st.series]

    def eform(self, subject: str) -> dict:
        """The clinical record of ``subject`` ({} when the dataset carries none)."""
        rec = self.eforms.get(subject)
        return rec if isinstance(rec, dict) else {}

    def path(self, rel: str) -> Path:
        """``<dataset root>/<rel>`` (through the study symlinks)."""
        return self.root / rel

    def series_path(self, series: Series) -> Path:
        return self.root / series.subject / series.study / series.series

    def summary(self) -> DatasetSummary:
        series = self.series
        return DatasetSummary(
            dataset_id=self.dataset_id, name=self.name, version=self.version, path=str(self.root),
            n_subjects=len(self.subjects), n_studies=len(self.studies), n_series=len(series),
            n_files=sum(s.n_files for s in series), size=sum(s.size for s in series),
            merkle_root=self.merkle_root)

    def study_table(self) -> list[dict]:
        """One row per study: ids, modalities, body part, counts, and the subject's eForm (flattened)."""
        rows = []
        for st in self.studies:
            row = {"study_id": st.study_id, "subject": st.subject, "study": st.study,
                   "modalities": ",".join(st.modalities),
                   "body_part": ",".join(sorted({s.body_part for s in st.series if s.body_part})),
                   "n_series": len(st.series), "n_files": len(st.files),
                   "size": sum(f.size for f in st.files)}
            for k, v in _flatten(self.eform(st.subject)).items():
                row.setdefault(k, v)
            rows.append(row)
        return rows

    # MONAI items --------------------------------------------------------
    def _label_fn(self, label: str | Callable[[dict], Any] | None) -> Callable[[dict], Any] | None:
        if label is None or callable(label):
            return label
        return lambda rec: _lookup(rec, label)

    def study_items(self, label: str | Callable[[dict], Any] | None = None, *,
                    classes: Sequence[Any] | Mapping[Any, int] | None = None,
                    modality: str | Iterable[str] | None = None,
                    body_part: str | Iterable[str] | None = None,
                    include_files: bool = False,
                    missing: str = "skip") -> Iterator[tuple[Study, list[dict]]]:
        """Yield ``(study, items)`` per study, one item per series (see the module doc).

        ``label``: a (dotted) eForm key such as ``"cancer_type"`` or ``"follow_up.status"``,
        or a function of the subject's eForm. ``classes``: the label values in class order
        (or a mapping value → index); the item's ``label`` is then the index. ``missing``:
        what to do with a series whose label is absent or not in ``classes``: ``"skip"``
        it or ``"error"``. ``modality``/``body_part`` keep only matching series.
        """
        if missing not in ("skip", "error"):
            raise ValueError("missing must be 'skip' or 'error'")
        fn = self._label_fn(label)
        index: Mapping[Any, int] | None
        if classes is None:
            index = None
        elif isinstance(classes, Mapping):
            index = dict(classes)
        else:
            index = {c: i for i, c in enumerate(classes)}
        mods = {modality} if isinstance(modality, str) else (set(modality) if modality is not None else None)
        parts = {body_part} if isinstance(body_part, str) else (set(body_part) if body_part is not None else None)
        for st in self.studies:
            items = []
            value: Any = None
            if fn is not None:
                try:
                    value = fn(self.eform(st.subject))
                    if index is not None:
                        value = index[value]
                except (KeyError, TypeError) as e:
                    if missing == "error":
                        raise DatasetError(f"{st.study_id}: no usable label ({e!r})") from None
                    continue
                if value is None:
                    if missing == "error":
                        raise DatasetError(f"{st.study_id}: label is empty")
                    continue
            for se in st.series:
                if mods is not None and se.modality not in mods:
                    continue
                if parts is not None and se.body_part not in parts:
                    continue
                item: dict[str, Any] = {
                    "image": str(self.series_path(se)),
                    "dataset_id": self.dataset_id, "subject": se.subject, "study": se.study,
                    "series": se.series, "study_id": se.study_id, "series_id": se.series_id,
                    "modality": se.modality, "body_part": se.body_part,
                    "n_files": se.n_files, "size": se.size,
                }
                if fn is not None:
                    item["label"] = value
                if include_files:
                    item["files"] = [str(self.root / f.path) for f in se.files]
                items.append(item)
            if items:
                yield st, items

    def items(self, label: str | Callable[[dict], Any] | None = None, **kw) -> list[dict]:
        """All series as a flat list of items (same arguments as ``study_items``)."""
        return [it for _, items in self.study_items(label, **kw) for it in items]

    # integrity ----------------------------------------------------------
    def verify(self, *, hashes: bool = True, progress: Callable[[int, int], None] | None = None) -> IntegrityReport:
        """Check the dataset against its manifest (``integrity.py``); never raises for a bad file."""
        return verify_dataset(self, hashes=hashes, progress=progress)


# --------------------------------------------------------------------------- mount

def list_datasets(mount: str | os.PathLike | None = None) -> list[DatasetSummary]:
    """The datasets mounted in this workspace (folders holding a readable manifest), by id."""
    root = datasets_mount(mount)
    out = []
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.startswith(".") or not (root / entry / MANIFEST).is_file():
            continue
        try:
            out.append(Dataset(root / entry).summary())
        except DatasetError:
            continue
    return out


def open_dataset(ref: str | os.PathLike | None = None, mount: str | os.PathLike | None = None) -> Dataset:
    """Open a mounted dataset by id or readable name, or a dataset folder by path; with no ``ref``, the only one
    mounted."""
    if ref is None:
        found = list_datasets(mount)
        if len(found) != 1:
            raise DatasetError(f"{len(found)} datasets mounted at {datasets_mount(mount)}; name one of "
                               f"{[d.dataset_id for d in found]}")
        return Dataset(found[0].path)
    ref_s = os.fspath(ref)
    if "/" not in ref_s and ref_s not in (".", ".."):
        by_id, by_name = datasets_mount(mount) / ref_s, datasets_mount(mount) / BY_NAME / ref_s
        return Dataset(by_name if not by_id.exists() and by_name.exists() else by_id)
    return Dataset(ref_s)
