import os
import stat
import subprocess

import pytest
from sqlalchemy import func, select

from dataset_service.indexer import index_lake
from dataset_service.models import File, Series, Study, Subject


def counts(db):
    with db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Subject, Study, Series, File))


def test_index_and_reindex_rehashes_nothing(env):
    settings, db = env
    n_files = len(list(settings.lake_dir.rglob("*.dcm")))
    subj, studies, series, files = counts(db)
    assert files == n_files and subj == 6 and series == 2 * studies
    st = index_lake(settings, db, progress=False)
    assert st.files_hashed == 0 and st.files_cached == n_files and st.rows_written == 0 and st.rows_deleted == 0
    with db.session() as s:
        one = s.scalars(select(Study).order_by(Study.id)).first()
        assert one.digest and len(one.digest) == 64 and one.modalities in ("CT", "MR")
        assert one.study_date and one.body_part and one.subject.cancer_type


def test_changed_file_is_rehashed_and_vanished_study_removed(env):
    settings, db = env
    f = sorted(settings.lake_dir.rglob("*.dcm"))[0]
    rel = str(f.relative_to(settings.lake_dir))
    with db.session() as s:
        old = s.get(File, rel).sha256
        old_digest = s.get(Study, "/".join(rel.split("/")[:2])).digest
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    victim = sorted(p for p in settings.lake_dir.glob("sub-*/study-*"))[-1]
    subprocess.run(["rm", "-rf", str(victim)], check=True)
    st = index_lake(settings, db, progress=False)
    assert st.files_hashed == 1
    with db.session() as s:
        assert s.get(File, rel).sha256 != old
        assert s.get(Study, "/".join(rel.split("/")[:2])).digest != old_digest
        vid = str(victim.relative_to(settings.lake_dir))
        assert s.get(Study, vid) is None
        assert s.scalar(select(func.count()).select_from(File).where(File.path.like(vid + "/%"))) == 0


def test_bad_entries_reported_and_skipped(env, tmp_path):
    settings, db = env
    lake = settings.lake_dir
    series = sorted(lake.glob("sub-*/study-*/series-*"))[0]
    (series / "notdicom.dcm").write_bytes(b"hello")
    trunc = series / "trunc.dcm"
    trunc.write_bytes((series / "0001.dcm").read_bytes()[:200])
    (lake / "stray.txt").write_text("x")
    (lake / "sub-00001" / "study-01" / "loose.dcm").write_bytes(b"x")
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "x.dcm").write_bytes(b"y")
    os.symlink(secret, lake / "sub-00001" / "study-99")
    os.symlink(secret / "x.dcm", series / "link.dcm")
    (lake / "bad name").mkdir()
    before = counts(db)
    st = index_lake(settings, db, progress=False)
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in st.skipped}
    assert "not a DICOM" in reasons["notdicom.dcm"] or "DICM" in reasons["notdicom.dcm"]
    assert "trunc.dcm" in reasons
    assert "out of the lake" in reasons["study-99"] and "out of the lake" in reasons["link.dcm"]
    assert "folder" in reasons["loose.dcm"] and "folder" in reasons["stray.txt"]
    assert "plain name" in reasons["bad name"]
    assert counts(db) == before  # nothing of it entered the catalogue
    with db.session() as s:
        assert s.get(Study, "sub-00001/study-99") is None


def test_lake_folders_made_traverse_only(env):
    settings, db = env
    lake = settings.lake_dir
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(lake) & 0o007 == 0o001
    subj = sorted(lake.glob("sub-*"))[0]
    assert mode(subj) & 0o007 == 0o001
    study = sorted(subj.glob("study-*"))[0]
    assert mode(study) & 0o007 == 0


def test_says_so_when_it_may_not_chmod(env):
    settings, db = env
    subj = sorted(settings.lake_dir.glob("sub-*"))[0]
    os.chmod(subj, 0o755)
    if subprocess.run(["chattr", "+i", str(subj)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i not supported here")
    try:
        st = index_lake(settings, db, progress=False)
    finally:
        subprocess.run(["chattr", "-i", str(subj)], check=True)
    assert any("could not restrict 1 lake folder" in p for p in st.permissions)
    assert stat.S_IMODE(os.stat(subj).st_mode) == 0o755


def test_fast_header_reader_agrees_with_pydicom(lake_template, tmp_path):
    import io

    import pydicom

    from dataset_service.dicom_header import NotDicom, _pydicom_header, read_header

    files = sorted(lake_template.rglob("*.dcm"))[:20]
    for f in files:
        assert read_header(f.read_bytes()) == _pydicom_header(f.read_bytes())
    ds = pydicom.dcmread(files[0])  # the same instance in Implicit VR Little Endian
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert read_header(buf.getvalue()) == read_header(files[0].read_bytes())
    with pytest.raises(NotDicom):
        read_header(files[0].read_bytes()[:300])
