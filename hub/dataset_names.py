"""Readable folder names for a workspace's datasets: ``<datasets mount>/by-name/<slug>``. Pure.

A dataset is mounted at ``/mnt/datasets/<dataset id>``; beside it, ``/mnt/datasets/by-name/``
names each dataset of the workspace by its name and version (``lung-ct-demo-v1``), linking to
(embedded sandbox: a symlink ``../<id>``, ``hub/sandbox_spec.py``) or mounting (Kubernetes: the
same dataset volume a second time, ``hub/kube.py``) the same read-only folder. The spawner makes
it before the workspace starts, as root, in a folder the researcher cannot write.

Names are typed by data managers, so the slug assumes nothing of them (``name_slug``):

* lower-case ASCII letters, digits and single hyphens (accents folded by Unicode NFKD, other
  characters and ``/`` ``.`` ``..`` turned into a hyphen), no hyphen at either end, never ``--``;
  the name part at most ``NAME_MAX`` characters, the version part at most ``VERSION_MAX``
  (where a version also keeps single dots between digits or letters: ``v1.2``);
* ``dataset`` when nothing of the name is left (empty, only punctuation or only non-Latin script);
* ``-v<version>`` appended when the dataset has a version.

Within one workspace every dataset gets a distinct folder (``readable_names``): datasets whose
slugs collide (the same name and version, or names that differ only in case, accents or
punctuation) are *all* named ``<slug>--<dataset id>``. A slug never contains ``--`` and a
dataset id is unique, so these names are distinct from each other and from every plain slug:
the names are injective whatever the names chosen. Each is a single path component, never
``.`` or ``..``, at most 255 bytes.

kubespawner's ``slugs.safe_slug`` was not used: it keeps a name only when it is already a DNS
label and otherwise appends a hash (``lung-ct-demo---3f2a9c1e`` for "Lung CT demo"), which is
what nearly every name a person types would get; here the collisions are resolved among the
workspace's own datasets instead, with the dataset id a researcher also sees in the panel.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Mapping

BY_NAME = "by-name"  # the folder of readable names under the datasets mount
NAME_MAX = 60
VERSION_MAX = 20
FALLBACK = "dataset"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_NOT_VERSION = re.compile(r"[^a-z0-9.]+")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", str(text or ""))
    return "".join(c for c in folded if not unicodedata.combining(c)).encode("ascii", "ignore").decode().lower()


def _cut(s: str, limit: int) -> str:
    s = s[:limit]
    return s.strip("-.")


def version_slug(version: object) -> str:
    """The version as a slug part ("1", "1.2", "2024-03"); "" when nothing is left."""
    s = _NOT_VERSION.sub("-", _ascii(str(version if version is not None else "")))
    s = re.sub(r"[-.]{2,}", "-", s)  # a single dot stays between two parts; ".." never does
    s = re.sub(r"^v(?=[0-9])", "", s)  # "v2" is version 2, not "vv2"
    return _cut(s, VERSION_MAX)


def name_slug(name: object, version: object = "") -> str:
    """``<slug of name>[-v<slug of version>]`` (see the module doc); never empty, never contains ``--``."""
    base = _cut(_NOT_SLUG.sub("-", _ascii(str(name if name is not None else ""))), NAME_MAX) or FALLBACK
    v = version_slug(version)
    return f"{base}-v{v}" if v else base


def readable_names(datasets: Iterable[tuple[str, object, object]]) -> dict[str, str]:
    """``{dataset id: folder name}`` for ``(dataset id, name, version)`` triples: one distinct
    name each; every dataset whose slug collides with another's is named ``<slug>--<id>``."""
    rows = [(str(i), name_slug(n, v)) for i, n, v in datasets]
    if len({i for i, _ in rows}) != len(rows):  # the plan refuses a dataset chosen twice before this
        raise ValueError("dataset ids must be distinct")
    count: dict[str, int] = {}
    for _, s in rows:
        count[s] = count.get(s, 0) + 1
    return {i: (s if count[s] == 1 else f"{s}--{i}") for i, s in rows}


def readable_paths(datasets: Iterable[tuple[str, object, object]], mount_root: str) -> dict[str, str]:
    """``{dataset id: <mount_root>/by-name/<folder name>}``."""
    root = mount_root.rstrip("/") + "/" + BY_NAME
    return {i: f"{root}/{n}" for i, n in readable_names(datasets).items()}


def link_target(dataset_id: str) -> str:
    """What a ``by-name`` symlink points at: the dataset's own folder, relative (``../<id>``)."""
    return f"../{dataset_id}"

