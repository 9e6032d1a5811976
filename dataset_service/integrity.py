"""Integrity check: re-hash a dataset's files through its tree and compare with its manifest.

Reports every difference: files missing, changed (size or SHA-256), extra files
in a study (other than those the manifest's report says were left out), links that no longer point where the manifest says, a manifest
whose study digests or Merkle root do not follow from its files, and a root that
differs from the one recorded in the database.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from insitu.manifest import merkle_root, study_digest


@dataclass
class CheckResult:
    dataset_id: str
    ok: bool = True
    files_checked: int = 0
    problems: list[dict] = field(default_factory=list)

    def problem(self, kind: str, path: str, detail: str = "") -> None:
        self.ok = False
        if len(self.problems) < 1000:
            self.problems.append({"kind": kind, "path": path, "detail": detail})


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_dataset(dataset_dir: Path, lake_dir: Path, lake_mount_path: str, dataset_id: str,
                  recorded_root: str | None) -> CheckResult:
    """Files are read from the lake at ``lake_dir`` (the host's view of ``lake_mount_path``)."""
    res = CheckResult(dataset_id)
    try:
        manifest = json.loads((dataset_dir / "manifest.json").read_bytes())
    except (OSError, ValueError) as e:
        res.problem("manifest", "manifest.json", f"unreadable: {e}")
        return res
    mount = manifest.get("lake_mount_path", lake_mount_path).rstrip("/")
    # files the build left out on purpose (closed to the dataset's group) are named in the report
    left_out = {f.get("path") for f in (manifest.get("report") or {}).get("left_out_files", [])}
    digests = []
    for st in manifest.get("studies", []):
        sid = f"{st['subject']}/{st['study']}"
        link = dataset_dir / st["subject"] / st["study"]
        try:
            target = os.readlink(link)
        except OSError:
            res.problem("link", sid, "study link missing")
            target = None
        if target is not None and target != f"{mount}/{sid}":
            res.problem("link", sid, f"points to {target}, expected {mount}/{sid}")
        listed = set()
        flat = []
        for se in st.get("series", []):
            for f in se.get("files", []):
                rel = f["path"]
                listed.add(rel)
                flat.append((rel[len(sid) + 1:], f["size"], f["sha256"]))
                host = lake_dir / rel
                try:
                    size = host.stat().st_size
                    digest = _sha256(str(host))
                except OSError as e:
                    res.problem("missing", rel, e.strerror or str(e))
                    continue
                res.files_checked += 1
                if size != f["size"]:
                    res.problem("changed", rel, f"size {size} != {f['size']}")
                elif digest != f["sha256"]:
                    res.problem("changed", rel, "sha256 differs")
        study_host = lake_dir / sid
        if study_host.is_dir():
            for cur, _dirs, files in os.walk(study_host):
                for name in files:
                    rel = os.path.relpath(os.path.join(cur, name), lake_dir)
                    if rel not in listed and rel not in left_out:
                        res.problem("extra", rel, "file not in the manifest")
        d = study_digest(flat)
        if d != st.get("digest"):
            res.problem("digest", sid, "study digest does not follow from its files")
        digests.append((sid, st.get("digest", "")))
    try:
        root = merkle_root(digests) if digests else None
    except ValueError:
        root = None
    if root != manifest.get("merkle_root"):
        res.problem("root", "manifest.json", "Merkle root does not follow from the study digests")
    if recorded_root and manifest.get("merkle_root") != recorded_root:
        res.problem("root", "manifest.json", "Merkle root differs from the recorded one")
    return res
