import filecmp
import json
from pathlib import Path

import pydicom
import pytest

from dataset_service.demo_lake import write_lake


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_deterministic_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_lake(a, 5, seed=11, slices=3, size=16)
    write_lake(b, 5, seed=11, slices=3, size=16, workers=2)
    files = _tree(a)
    assert files == _tree(b) and len(files) > 5
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_differs_and_prefix_property(tmp_path):
    write_lake(tmp_path / "a", 3, seed=1, slices=2, size=16)
    write_lake(tmp_path / "c", 3, seed=2, slices=2, size=16)
    write_lake(tmp_path / "big", 5, seed=1, slices=2, size=16)
    f = "sub-00001/eform.json"
    assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() or \
        _tree(tmp_path / "a") != _tree(tmp_path / "c")
    for rel in _tree(tmp_path / "a"):  # subject i depends only on (seed, i)
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "big" / rel).read_bytes()


def test_headers_consistent(tmp_path):
    write_lake(tmp_path, 4, seed=3, series_per_study=2, slices=4, size=24)
    studies = sorted(p for p in tmp_path.glob("sub-*/study-*") if p.is_dir())
    assert studies
    sops = set()
    for st in studies:
        eform = json.loads((st.parent / "eform.json").read_text())
        assert {"cancer_type", "age_group", "sex", "diagnosis_date", "follow_up"} <= eform.keys()
        study_uids, series_uids = set(), set()
        for se in sorted(st.iterdir()):
            dss = [pydicom.dcmread(f) for f in sorted(se.glob("*.dcm"))]
            assert len(dss) == 4
            assert len({d.SeriesInstanceUID for d in dss}) == 1
            assert len({(d.Modality, d.BodyPartExamined, d.StudyDate) for d in dss}) == 1
            assert dss[0].Modality in ("CT", "MR")
            assert [int(d.InstanceNumber) for d in dss] == [1, 2, 3, 4]
            zs = [float(d.ImagePositionPatient[2]) for d in dss]
            assert zs == sorted(zs) and len(set(zs)) == 4
            assert dss[0].pixel_array.shape == (24, 24) and dss[0].pixel_array.std() > 0
            assert dss[0].PatientID == st.parent.name and dss[0].PatientIdentityRemoved == "YES"
            study_uids |= {d.StudyInstanceUID for d in dss}
            series_uids.add(dss[0].SeriesInstanceUID)
            sops |= {d.SOPInstanceUID for d in dss}
        assert len(study_uids) == 1 and len(series_uids) == 2
    assert len(sops) == 4 * 2 * len(studies)  # every instance UID unique


def test_cli_demo_lake(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dataset_service", "demo-lake", str(tmp_path / "l"), "--subjects", "2",
                        "--seed", "5", "--slices", "2", "--size", "16"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "l").rglob("*.dcm"))) >= 2 * 2 * 2
    r = subprocess.run([sys.executable, "-m", "dataset_service", "demo-lake", str(tmp_path / "m"), "--size", "2"],
                       capture_output=True, text=True)
    assert r.returncode != 0


def test_lesion_size_follows_stage(tmp_path):
    """The documented clinical signal: advanced-stage (III, IV) lesions are larger, with overlap."""
    import numpy as np

    from dataset_service.demo_lake import ADVANCED_STAGES

    write_lake(tmp_path, 40, seed=5, series_per_study=1, slices=16, size=32)
    sizes = {True: [], False: []}
    for se in sorted(tmp_path.glob("sub-*/study-*/series-*")):
        dss = [pydicom.dcmread(f) for f in sorted(se.glob("*.dcm"))]
        if dss[0].Modality != "MR":  # MR: tissue 600, lesion +500, noise sd 12: a clean threshold
            continue
        vol = np.stack([d.pixel_array for d in dss])
        stage = json.loads((se.parents[1] / "eform.json").read_text())["stage"]
        sizes[stage in ADVANCED_STAGES].append(int((vol > 850).sum()))
    early, advanced = sizes[False], sizes[True]
    assert len(early) >= 8 and len(advanced) >= 8
    assert min(early + advanced) > 0  # every volume has a lesion
    assert np.median(advanced) > 2 * np.median(early)
    assert min(advanced) < max(early)  # imperfect: the ranges overlap
