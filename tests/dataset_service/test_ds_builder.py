import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_service import acl, builder
from dataset_service.demo_lake import write_lake
from dataset_service.integrity import check_dataset
from insitu.manifest import merkle_root, study_digest
from dataset_service.models import Dataset, DatasetState, Study
from dataset_service.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def ids(db):
    with db.session() as s:
        return list(s.scalars(select(Study.id).order_by(Study.id)))


def get(db, i) -> Dataset:
    with db.session() as s:
        return s.get(Dataset, i)


def test_build_tree_manifest_acls(env):
    settings, db = env
    chosen = ids(db)[:3]
    i = builder.create_dataset(settings, db, actor="dora", name="three", study_ids=chosen, tags=["t1"])
    assert get(db, i).state == DatasetState.building
    assert not (settings.datasets_dir / i).exists()
    assert builder.build(settings, db, i) == "draft"
    ds = get(db, i)
    root = settings.datasets_dir / i
    assert settings.gid_min <= ds.gid <= settings.gid_max
    for sid in chosen:
        link = root / sid
        assert link.is_symlink() and os.readlink(link) == f"/mnt/datalake/{sid}"
        entries = acl.read_acl(settings.lake_dir / sid)
        assert entries[(acl.GROUP, ds.gid)] == 5
        for f in (settings.lake_dir / sid).rglob("*.dcm"):
            assert acl.read_acl(f)[(acl.GROUP, ds.gid)] == 4
    m = json.loads((root / "manifest.json").read_text())
    assert m["dataset_id"] == i and m["merkle_root"] == ds.merkle_root and m["study_count"] == 3
    digests = []
    for st in m["studies"]:
        sid = f"{st['subject']}/{st['study']}"
        flat = [(f["path"][len(sid) + 1:], f["size"], f["sha256"]) for se in st["series"] for f in se["files"]]
        assert st["digest"] == study_digest(flat)
        digests.append((sid, st["digest"]))
        for f in flat:  # the manifest path opens the file through the lake
            assert (settings.lake_dir / sid / f[0]).stat().st_size == f[1]
    assert merkle_root(digests) == ds.merkle_root
    eforms = json.loads((root / "eforms.json").read_text())
    assert sorted(eforms) == sorted({s.split("/")[0] for s in chosen})
    assert all(e["cancer_type"] for e in eforms.values())
    # read-only tree, readable by the dataset's group only
    for p in [root, root / "manifest.json", root / "eforms.json", root / chosen[0].split("/")[0]]:
        assert stat.S_IMODE(os.lstat(p).st_mode) & 0o222 == 0
        assert stat.S_IMODE(os.lstat(p).st_mode) & 0o007 == 0
    assert check_dataset(root, settings.lake_dir, settings.lake_mount_path, i, ds.merkle_root).ok


def test_gids_distinct_and_range_exhaustion(env):
    settings, db = env
    small = settings.model_copy(update={"gid_min": 940000, "gid_max": 940001})
    a = builder.create_dataset(small, db, actor="dora", name="a", all_studies=True)
    b = builder.create_dataset(small, db, actor="dora", name="b", all_studies=True)
    assert {get(db, a).gid, get(db, b).gid} == {940000, 940001}
    with pytest.raises(builder.RequestError, match="no free POSIX gid"):
        builder.create_dataset(small, db, actor="dora", name="c", all_studies=True)


@pytest.mark.parametrize("bad, reason", [
    ("../etc", "traversal"), ("/etc/passwd", "absolute"), ("sub-00001/../../x", "traversal"),
    ("sub-00001", "<subject>/<study>"), ("sub-00001/study-01/series-01", "<subject>/<study>"),
    ("sub-00001/no-such", "unknown study"),
])
def test_path_safety_refused(env, bad, reason):
    settings, db = env
    with pytest.raises(builder.RequestError, match=reason.replace("<", ".").replace(">", ".")):
        builder.create_dataset(settings, db, actor="dora", name="x", study_ids=[bad])
    with db.session() as s:
        assert s.scalars(select(Dataset)).first() is None


def test_symlinked_study_escaping_lake_refused(env, tmp_path):
    settings, db = env
    sid = ids(db)[0]
    study = settings.lake_dir / sid
    moved = tmp_path / "elsewhere"
    study.rename(moved)
    os.symlink(moved, study)  # the catalogue still names it; the folder now leaves the lake
    with pytest.raises(builder.RequestError, match="outside the lake"):
        builder.create_dataset(settings, db, actor="dora", name="x", study_ids=[sid])


def test_lake_changed_after_index_fails_cleanly(env):
    settings, db = env
    chosen = ids(db)[:2]
    i = builder.create_dataset(settings, db, actor="dora", name="x", study_ids=chosen)
    f = sorted((settings.lake_dir / chosen[1]).rglob("*.dcm"))[0]
    f.write_bytes(f.read_bytes() + b"\0")
    assert builder.build(settings, db, i) == "failed"
    ds = get(db, i)
    assert "re-index" in ds.error
    assert sorted(p.name for p in settings.datasets_dir.iterdir()) == [".locks"]  # nothing visible
    for sid in chosen:  # the ACL entries given so far are taken back
        assert (acl.GROUP, ds.gid) not in acl.read_acl(settings.lake_dir / sid)


def test_crash_after_rename_is_finished_on_recovery(env):
    settings, db = env
    i = builder.create_dataset(settings, db, actor="dora", name="x", all_studies=True)
    assert builder.build(settings, db, i) == "draft"
    with db.session() as s:  # the process died between the rename and the database update
        d = s.get(Dataset, i)
        root = d.merkle_root
        d.state, d.merkle_root = DatasetState.building, None
    runner = builder.BuildRunner(settings, db)
    assert runner.recover() == [i]
    runner.shutdown()
    d = get(db, i)
    assert d.state == DatasetState.draft and d.merkle_root == root


def test_killed_build_leaves_nothing_and_resumes(open_tmp):
    lake, dsdir = open_tmp / "lake", open_tmp / "datasets"
    write_lake(lake, 400, seed=3, studies_per_subject=1, series_per_study=1, slices=1, size=8, workers=2)
    env = dict(os.environ, INSITU_LAKE_DIR=str(lake), INSITU_DATASETS_DIR=str(dsdir),
               INSITU_DATABASE_URL=f"sqlite:///{open_tmp / 'db.sqlite'}", INSITU_GID_MIN="950000",
               INSITU_GID_MAX="950100", INSITU_TRACER_URL="")
    cli = [sys.executable, "-m", "dataset_service"]
    subprocess.run(cli + ["index", "--no-progress"], env=env, check=True, capture_output=True)
    settings = Settings(lake_dir=lake, datasets_dir=dsdir, database_url=env["INSITU_DATABASE_URL"],
                        gid_min=950000, gid_max=950100)
    from dataset_service.db import Database

    db = Database(settings.database_url)
    for attempt in range(5):
        proc = subprocess.Popen(cli + ["create-dataset", "--name", "big", "--all-studies", "--no-progress"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.startswith(".building-") for p in dsdir.iterdir()) if dsdir.exists() else False:
                break
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            break
        proc.wait()
    else:
        pytest.fail("the build always finished before it could be killed")
    with db.session() as s:
        (d,) = s.scalars(select(Dataset).where(Dataset.state == DatasetState.building)).all()
        i = d.id
    assert not (dsdir / i).exists()  # no partial dataset visible
    r = subprocess.run(cli + ["recover"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "resumed 1" in r.stdout, r.stderr
    d = get(db, i)
    assert d.state == DatasetState.draft and d.build_attempts == 2
    assert not any(p.name.startswith(".building-") for p in dsdir.iterdir())
    r = subprocess.run(cli + ["check", i], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    db.dispose()


def test_cli_exit_codes_and_integrity(env):
    settings, db = env
    e = dict(os.environ, INSITU_LAKE_DIR=str(settings.lake_dir), INSITU_DATASETS_DIR=str(settings.datasets_dir),
             INSITU_DATABASE_URL=settings.database_url, INSITU_GID_MIN="960000", INSITU_GID_MAX="960010",
             INSITU_TRACER_URL="")
    cli = [sys.executable, "-m", "dataset_service"]
    r = subprocess.run(cli + ["create-dataset", "--name", "q", "--query", "modality=CT", "--no-progress"], env=e,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    i = r.stdout.strip()
    assert i.startswith("ds-") and get(db, i).state == DatasetState.draft
    assert subprocess.run(cli + ["check", i], env=e, capture_output=True).returncode == 0
    bad = subprocess.run(cli + ["create-dataset", "--name", "q", "--query", "colour=red"], env=e,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown catalogue filter" in bad.stderr and len(bad.stderr.splitlines()) == 1
    m = json.loads((settings.datasets_dir / i / "manifest.json").read_text())
    victim = settings.lake_dir / m["studies"][0]["series"][0]["files"][0]["path"]
    victim.write_bytes(b"tampered" + victim.read_bytes()[8:])
    r = subprocess.run(cli + ["check", i], env=e, capture_output=True, text=True)
    assert r.returncode != 0 and "changed" in r.stderr and str(victim.relative_to(settings.lake_dir)) in r.stderr
    assert subprocess.run(cli + ["check", "ds-nope"], env=e, capture_output=True).returncode != 0
