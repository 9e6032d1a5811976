"""The manifest of a dataset (format ``insitu-manifest/1``) and its hashing rules.

Standard library only: the workspace library checks datasets with these same functions.

Hashing rules (all SHA-256, hex lower case, 64 characters):

1. **File digest** ``sha256``: SHA-256 of the file's bytes.
2. **Study digest**: SHA-256 of the UTF-8 text made of one line per file of
   the study, sorted by the file's path relative to the study folder
   (``<series>/<instance>``, byte order of the UTF-8 path)::

       <relative path> TAB <size in decimal> TAB <file sha256> LF

   It depends only on the study's files, not on the dataset or the mount path:
   the same study has the same digest in every dataset.
3. **Merkle leaf** of a study: ``SHA-256(0x00 || utf8("<subject>/<study>") || 0x0A || bytes(study digest))``.
4. **Merkle root**: leaves in order of study id (UTF-8 byte order); each level
   pairs neighbours as ``SHA-256(0x01 || left || right)``; an odd last node is
   carried up unchanged; the root of one leaf is that leaf. The root is the
   dataset's identity (written to the chain by the tracer). A dataset has at
   least one study.

The 0x00/0x01 prefixes separate leaves from inner nodes (as RFC 6962 does),
so no inner node can pass for a leaf.

``manifest.json`` is written as canonical JSON (sorted keys, no insignificant
whitespace (``,`` and ``:`` separators), UTF-8, trailing newline) with: ``format``, ``dataset_id``, ``name``,
``version``, ``lake_mount_path``, ``merkle_root``, ``study_count``,
``file_count``, ``total_size``, ``studies[]`` each with ``subject``, ``study``,
``digest``, ``series[]`` each with ``series``, ``modality``, ``body_part`` and
``files[]`` of ``{path, size, sha256}`` where ``path`` is relative to the
dataset root (``<subject>/<study>/<series>/<instance>``).

An optional ``report`` says what the selection left out and why:
``left_out_studies[]`` of ``{study, reason}`` (unsafe studies) and
``left_out_files[]`` of ``{path, reason}`` (files of a study that the catalogue
does not hold, e.g. unreadable or broken DICOM; path relative to the dataset
root). It is not hashed: the digests and the root cover exactly the listed files.
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable, Sequence

from insitu import merkle

FORMAT = "insitu-manifest/1"


def study_digest(files: Iterable[tuple[str, int, str]]) -> str:
    """``files``: (path relative to the study, size, sha256)."""
    h = hashlib.sha256()
    for rel, size, digest in sorted(files, key=lambda f: f[0].encode("utf-8")):
        h.update(f"{rel}\t{size}\t{digest}\n".encode("utf-8"))
    return h.hexdigest()


def leaf(study_id: str, digest: str) -> bytes:
    return merkle.leaf_hash(study_id.encode("utf-8") + b"\n" + bytes.fromhex(digest))


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    return merkle.build_levels(leaves)


def merkle_root(studies: Iterable[tuple[str, str]]) -> str:
    """``studies``: (study id, study digest); order does not matter (sorted here)."""
    items = sorted(studies, key=lambda s: s[0].encode("utf-8"))
    return merkle_levels([leaf(sid, d) for sid, d in items])[-1][0].hex()


def merkle_proof(studies: Iterable[tuple[str, str]], study_id: str) -> list[tuple[str, str]]:
    """Inclusion proof of one study: [(side 'L'|'R', sibling hex)] from leaf to root."""
    items = sorted(studies, key=lambda s: s[0].encode("utf-8"))
    idx = [sid for sid, _ in items].index(study_id)
    proof = []
    for level in merkle_levels([leaf(sid, d) for sid, d in items])[:-1]:
        sib = idx ^ 1
        if sib < len(level):
            proof.append(("L" if sib < idx else "R", level[sib].hex()))
        idx //= 2
    return proof


def verify_proof(study_id: str, digest: str, proof: list[tuple[str, str]], root: str) -> bool:
    node = leaf(study_id, digest)
    for side, sib in proof:
        s = bytes.fromhex(sib)
        node = merkle.node_hash(s, node) if side == "L" else merkle.node_hash(node, s)
    return node.hex() == root


def canonical_json(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def build_manifest(*, dataset_id: str, name: str, version: int, lake_mount_path: str,
                   studies: list[dict], report: dict | None = None) -> dict:
    """``studies``: [{subject, study, series: [{series, modality, body_part, files: [(rel-to-study, size, sha)]}]}].

    Returns the manifest dict (digests and root computed here, by the rules above).
    """
    out = []
    total_files = total_size = 0
    for st in sorted(studies, key=lambda s: f"{s['subject']}/{s['study']}".encode("utf-8")):
        sid = f"{st['subject']}/{st['study']}"
        flat = []
        series_out = []
        for se in sorted(st["series"], key=lambda x: x["series"].encode("utf-8")):
            files = []
            for rel, size, sha in sorted(se["files"], key=lambda f: f[0].encode("utf-8")):
                flat.append((rel, size, sha))
                files.append({"path": f"{sid}/{rel}", "size": size, "sha256": sha})
                total_size += size
            total_files += len(files)
            series_out.append({"series": se["series"], "modality": se.get("modality"),
                               "body_part": se.get("body_part"), "files": files})
        out.append({"subject": st["subject"], "study": st["study"], "digest": study_digest(flat),
                    "series": series_out})
    root = merkle_root((f"{s['subject']}/{s['study']}", s["digest"]) for s in out)
    out_manifest = {
        "format": FORMAT,
        "dataset_id": dataset_id,
        "name": name,
        "version": version,
        "lake_mount_path": lake_mount_path,
        "merkle_root": root,
        "study_count": len(out),
        "file_count": total_files,
        "total_size": total_size,
        "studies": out,
    }
    if report is not None:
        out_manifest["report"] = report
    return out_manifest
