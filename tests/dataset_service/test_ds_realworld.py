"""Datasets from a lake of real-world DICOM files (pydicom's own test files: many vendors, transfer
syntaxes and encodings), with broken files, a study of nothing readable and a link out of the lake."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from dataset_service import builder
from dataset_service.db import Database
from dataset_service.indexer import index_lake
from dataset_service.models import Dataset, DatasetState, File, IndexSkip, Series, Study
from dataset_service.settings import Settings
from tests.fixtures.realworld_lake import write_realworld_lake

NOBODY = 65534


@pytest.fixture
def rw(open_tmp):
    lake = write_realworld_lake(open_tmp / "lake", open_tmp / "outside")
    settings = Settings(lake_dir=lake.root, datasets_dir=open_tmp / "datasets",
                        database_url=f"sqlite:///{open_tmp / 'db.sqlite'}", gid_min=931000, gid_max=931099,
                        tracer_url="")
    db = Database(settings.database_url)
    db.upgrade()
    stats = index_lake(settings, db, progress=False)
    yield lake, settings, db, stats
    db.dispose()


def test_the_lake_is_varied(rw):
    lake, *_ = rw
    assert len(lake.transfer_syntaxes) >= 8 and len(lake.vendors) >= 8
    assert len(lake.studies_with_readable_files()) >= 20 and len(lake.broken) >= 20 and lake.no_modality


def test_index_catalogues_readable_files_and_reports_the_rest(rw):
    lake, settings, db, stats = rw
    reasons = {s["path"]: s["reason"] for s in stats.skipped}
    assert "out of the lake" in reasons[lake.link_path]
    with db.session() as s:
        catalogued = set(s.scalars(select(File.path)))
        skips = {r.path: r for r in s.scalars(select(IndexSkip))}
        studies = set(s.scalars(select(Study.id)))
        for p in lake.no_modality:  # valid DICOM without Modality: catalogued, modality unknown
            f = s.get(File, p)
            assert f is not None and f.modality == "UNKNOWN"
            assert s.get(Series, p.rsplit("/", 1)[0]).modality == "UNKNOWN"
    assert set(lake.broken) <= set(reasons) and not set(lake.broken) & catalogued
    assert skips[lake.link_path].link and skips[lake.link_path].study_id == lake.link_study
    assert all(skips[p].study_id == "/".join(p.split("/")[:2]) and not skips[p].link for p in lake.broken)
    # every readable file is catalogued, except what the fast reader and pydicom disagree on, which is reported
    missing = set(lake.readable) - catalogued
    assert missing <= set(reasons) and len(missing) <= 3, {p: reasons.get(p) for p in missing}
    assert lake.only_broken_study not in studies
    assert studies == lake.studies_with_readable_files() - {"/".join(p.split("/")[:2]) for p in missing
                                                            if not any(c.startswith("/".join(p.split("/")[:2]) + "/")
                                                                       for c in catalogued)}


def _cli_env(settings: Settings) -> dict:
    return dict(os.environ, INSITU_LAKE_DIR=str(settings.lake_dir), INSITU_DATASETS_DIR=str(settings.datasets_dir),
                INSITU_DATABASE_URL=settings.database_url, INSITU_GID_MIN="931100", INSITU_GID_MAX="931110",
                INSITU_TRACER_URL="")


def test_all_studies_leaves_out_unsafe_studies_and_skipped_files_with_a_report(rw):
    lake, settings, db, stats = rw
    cli = [sys.executable, "-m", "dataset_service"]
    r = subprocess.run(cli + ["create-dataset", "--name", "real-world", "--all-studies", "--no-progress"],
                       env=_cli_env(settings), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    i = r.stdout.strip()
    assert f"left out study {lake.link_study}" in r.stderr and "symbolic link" in r.stderr
    with db.session() as s:
        ds = s.get(Dataset, i)
        catalogued = set(s.scalars(select(Study.id)))
        assert ds.state == DatasetState.draft
        assert {x.study_id for x in ds.studies} == catalogued - {lake.link_study}
    m = json.loads((settings.datasets_dir / i / "manifest.json").read_text())
    assert m["report"]["left_out_studies"] == [
        {"study": lake.link_study, "reason": m["report"]["left_out_studies"][0]["reason"]}]
    assert "out of the lake" in m["report"]["left_out_studies"][0]["reason"]
    left = {x["path"]: x["reason"] for x in m["report"]["left_out_files"]}
    in_dataset = {p for p in lake.broken if "/".join(p.split("/")[:2]) in catalogued - {lake.link_study}}
    assert in_dataset and set(left) == in_dataset | (set(left) - set(lake.broken))
    reasons = {s["path"]: s["reason"] for s in stats.skipped}
    assert all(left[p] == reasons[p] for p in left)  # the indexer's own reason, e.g. "no DICM preamble"
    listed = {f["path"] for st in m["studies"] for se in st["series"] for f in se["files"]}
    assert not listed & set(left) and m["file_count"] == len(listed)
    assert any("truncated" in v for v in left.values()) and any("DICM" in v for v in left.values())
    # the study digests are the catalogue's: the left-out files are not in them
    with db.session() as s:
        for st in m["studies"]:
            assert st["digest"] == s.get(Study, f"{st['subject']}/{st['study']}").digest
    chk = subprocess.run(cli + ["check", i], env=_cli_env(settings), capture_output=True, text=True)
    assert chk.returncode == 0, chk.stderr


def test_naming_an_unsafe_study_is_refused_with_the_reason(rw):
    lake, settings, db, _ = rw
    with pytest.raises(builder.RequestError) as e:
        builder.create_dataset(settings, db, actor="dora", name="x", study_ids=[lake.link_study])
    assert e.value.status == 422 and "symbolic link" in str(e.value) and "out of the lake" in str(e.value)
    with db.session() as s:
        assert s.scalars(select(Dataset)).first() is None


def test_a_left_out_file_cannot_be_read_through_the_dataset(rw):
    """The kernel: the dataset's group reads the study's catalogued files, not the ones left out,
    although they were world-readable in the lake."""
    lake, settings, db, _ = rw
    with db.session() as s:
        sid = next(st for st in sorted(lake.studies_with_readable_files())
                   if st != lake.link_study and any(p.startswith(st + "/") for p in lake.broken)
                   and s.get(Study, st) is not None)
    i = builder.create_dataset(settings, db, actor="dora", name="one", study_ids=[sid])
    assert builder.build(settings, db, i) == "draft"
    with db.session() as s:
        ds = s.get(Dataset, i)
        gid = ds.gid
        left = [x["path"] for x in ds.report["left_out_files"]]
        kept = s.scalars(select(File.path).where(File.path.like(sid + "/%"))).first()
    assert left and kept

    def cat(rel: str) -> subprocess.CompletedProcess:
        return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--groups", str(gid),
                               "cat", str(settings.lake_dir / rel)], capture_output=True)

    assert cat(kept).returncode == 0 and cat(kept).stdout == (settings.lake_dir / kept).read_bytes()
    for rel in left:
        r = cat(rel)
        assert r.returncode != 0 and b"Permission denied" in r.stderr, rel
