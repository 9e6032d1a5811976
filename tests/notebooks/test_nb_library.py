"""The workspace dataset library (hub/workspace/datasets.py) on a dataset built by the real builder
over a real demo lake. The oracle is the lake itself, walked here (the library must not walk it)."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from insitu import manifest as service_manifest
from hub.workspace import datasets as wds
from nb_demo import build_dataset


def lake_series(lake: Path) -> dict[str, list[Path]]:
    """series id -> its instance files, by walking the lake."""
    out = {}
    for subject in sorted(p for p in lake.iterdir() if p.is_dir()):
        for study in sorted(p for p in subject.iterdir() if p.is_dir()):
            for series in sorted(p for p in study.iterdir() if p.is_dir()):
                out[f"{subject.name}/{study.name}/{series.name}"] = sorted(series.glob("*.dcm"))
    return out


def make_writable(root: Path) -> None:
    """The builder seals the tree read-only; the tamper tests open it up again (as root)."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)


# ---------------------------------------------------------------- listing and opening

def test_lists_the_mounted_datasets_from_the_env_mount(demo, monkeypatch, tmp_path):
    lake, root = demo
    monkeypatch.setenv(wds.MOUNT_ENV, str(root.parent))
    found = wds.list_datasets()
    assert [d.dataset_id for d in found] == [root.name]
    series = lake_series(lake)
    d = found[0]
    assert d.n_series == len(series)
    assert d.n_files == sum(len(f) for f in series.values())
    assert d.size == sum(p.stat().st_size for f in series.values() for p in f)
    assert d.n_subjects == len({s.split("/")[0] for s in series})
    assert d.merkle_root == json.loads((root / "manifest.json").read_text())["merkle_root"]
    assert wds.open_dataset().dataset_id == root.name            # the only one mounted
    assert wds.open_dataset(root.name).root == root              # by id under the mount
    assert wds.open_dataset(str(root)).dataset_id == root.name   # by path
    # an empty or absent mount lists nothing; opening "the only one" then says why
    monkeypatch.setenv(wds.MOUNT_ENV, str(tmp_path / "absent"))
    assert wds.list_datasets() == []
    with pytest.raises(wds.DatasetError, match="0 datasets"):
        wds.open_dataset()


def test_two_mounted_datasets_must_be_named(small, tmp_path):
    lake, first = small
    second = build_dataset(lake, first.parent, tmp_path / "second.sqlite", name="second",
                           study_ids=["sub-00001/study-01"])
    found = wds.list_datasets(first.parent)
    assert sorted(d.dataset_id for d in found) == sorted([first.name, second.name])
    assert {d.dataset_id: d.n_studies for d in found}[second.name] == 1
    with pytest.raises(wds.DatasetError, match="2 datasets"):
        wds.open_dataset(mount=first.parent)
    assert wds.open_dataset(second.name, mount=first.parent).name == "second"


# ---------------------------------------------------------------- items

def test_items_are_the_series_with_eform_labels(demo):
    lake, root = demo
    ds = wds.open_dataset(root)
    series = lake_series(lake)
    items = ds.items(label="cancer_type", include_files=True)
    assert sorted(i["series_id"] for i in items) == sorted(series)
    for it in items:
        sid = it["series_id"]
        subject = sid.split("/")[0]
        eform = json.loads((lake / subject / "eform.json").read_text())
        assert it["label"] == eform["cancer_type"]
        assert it["image"] == str(root / sid)
        assert Path(it["image"]).is_dir()
        assert os.path.realpath(it["image"]) == os.path.realpath(lake / sid)
        assert [os.path.realpath(f) for f in it["files"]] == [os.path.realpath(p) for p in series[sid]]
        header = pydicom.dcmread(series[sid][0], stop_before_pixels=True)
        assert (it["modality"], it["body_part"]) == (header.Modality, header.BodyPartExamined)
        assert it["n_files"] == len(series[sid])


def test_item_options_classes_filters_nested_keys_and_missing(demo):
    lake, root = demo
    ds = wds.open_dataset(root)
    classes = ["breast", "colorectal", "glioma", "lung", "prostate"]
    items = ds.items(label="cancer_type", classes=classes)
    assert all(classes[i["label"]] == ds.eform(i["subject"])["cancer_type"] for i in items)
    mr = ds.items(modality="MR")
    assert mr and {i["modality"] for i in mr} == {"MR"}
    assert len(mr) + len(ds.items(modality="CT")) == len(ds.items())
    status = ds.items(label="follow_up.status")
    assert {i["label"] for i in status} <= {"alive, no disease", "alive with disease", "deceased"}
    # a label value outside the classes: skipped by default, an error when asked
    only_lung = ds.items(label="cancer_type", classes=["lung"])
    assert only_lung and {i["label"] for i in only_lung} == {0}
    assert len(only_lung) == sum(ds.eform(i["subject"])["cancer_type"] == "lung" for i in ds.items())
    with pytest.raises(wds.DatasetError):
        ds.items(label="cancer_type", classes=["lung"], missing="error")
    # per study: each study once, its series together
    per_study = list(ds.study_items())
    assert [st.study_id for st, _ in per_study] == [st.study_id for st in ds.studies]
    assert all({i["study_id"] for i in its} == {st.study_id} for st, its in per_study)


def test_study_table_joins_the_eforms(demo):
    lake, root = demo
    table = wds.open_dataset(root).study_table()
    assert len(table) == len({s.rsplit("/", 1)[0] for s in lake_series(lake)})
    for row in table:
        eform = json.loads((lake / row["subject"] / "eform.json").read_text())
        assert row["cancer_type"] == eform["cancer_type"]
        assert row["follow_up.months"] == eform["follow_up"]["months"]


def test_monai_loads_an_item_as_the_lake_series(demo):
    from monai.transforms import LoadImage

    lake, root = demo
    item = random.Random(3).choice(wds.open_dataset(root).items())
    got = np.asarray(LoadImage(reader="PydicomReader", image_only=True)(item["image"]))
    slices = sorted((pydicom.dcmread(p) for p in sorted((lake / item["series_id"]).glob("*.dcm"))),
                    key=lambda d: int(d.InstanceNumber))
    want = np.stack([d.pixel_array * float(getattr(d, "RescaleSlope", 1)) + float(getattr(d, "RescaleIntercept", 0))
                     for d in slices])
    assert got.shape == want.shape[::-1]
    assert np.allclose(got, want.transpose(2, 1, 0))


def test_reading_the_dataset_never_lists_the_lake(demo, monkeypatch):
    lake, root = demo
    lake_real = os.path.realpath(lake)
    listed = []
    for name in ("listdir", "scandir"):
        real = getattr(os, name)

        def spy(path=".", _real=real):
            listed.append(os.path.realpath(path))
            return _real(path)
        monkeypatch.setattr(os, name, spy)
    walk = os.walk
    monkeypatch.setattr(os, "walk", lambda *a, **k: (listed.append(os.path.realpath(a[0])), walk(*a, **k))[1])
    found = wds.list_datasets(root.parent)
    ds = wds.open_dataset(found[0].dataset_id, mount=root.parent)
    ds.items(label="cancer_type", include_files=True)
    ds.study_table()
    ds.summary()
    assert listed == [os.path.realpath(root.parent)]
    assert not any(p == lake_real or p.startswith(lake_real + os.sep) for p in listed)


# ---------------------------------------------------------------- hashing rules

def test_hashing_rules_are_the_dataset_services():
    """One implementation: the workspace library checks with the core's rules, the ones datasets are built
    with (tests/dataset_service/test_ds_manifest.py checks the rules themselves by hand)."""
    assert wds.study_digest is service_manifest.study_digest
    assert wds.merkle_root is service_manifest.merkle_root


def test_the_built_dataset_verifies(demo):
    lake, root = demo
    rep = wds.open_dataset(root).verify()
    assert rep.ok, str(rep)
    assert rep.files_checked == sum(len(f) for f in lake_series(lake).values())
    assert rep.bytes_read == sum(p.stat().st_size for f in lake_series(lake).values() for p in f)


# ---------------------------------------------------------------- integrity: tampering is found

def _kinds(root: Path) -> dict[str, int]:
    return wds.open_dataset(root).verify().counts()


def test_verify_finds_changed_truncated_missing_and_extra_files(small):
    lake, root = small
    assert _kinds(root) == {}
    files = sorted(lake.glob("*/*/*/*.dcm"))
    flipped, truncated, deleted = files[0], files[5], files[9]
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 0x01                                  # same size, one bit of pixel data
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-2])
    deleted.unlink()
    shutil.copy(files[1], files[1].parent / "9999.dcm")   # a file the manifest does not list
    rep = wds.open_dataset(root).verify()
    assert rep.counts() == {"missing": 1, "sha256": 1, "size": 1, "unlisted": 1}, str(rep)
    by_kind = {p.kind: p.path for p in rep.problems}
    assert by_kind["sha256"] == str(flipped.relative_to(lake))
    assert by_kind["size"] == str(truncated.relative_to(lake))
    assert by_kind["missing"] == str(deleted.relative_to(lake))
    assert by_kind["unlisted"] == str((files[1].parent / "9999.dcm").relative_to(lake))
    # the check by size alone sees the truncation and the deletion, not the flipped bit
    quick = wds.open_dataset(root).verify(hashes=False)
    assert {p.kind for p in quick.problems} == {"missing", "size", "unlisted"}


def test_verify_finds_a_redirected_link_and_extra_studies(small, tmp_path):
    lake, root = small
    make_writable(root)
    m = json.loads((root / "manifest.json").read_text())
    st = m["studies"][0]
    link = root / st["subject"] / st["study"]
    # an identical copy of the study elsewhere: same bytes, but not the lake the manifest names
    copy = tmp_path / "elsewhere" / st["subject"] / st["study"]
    shutil.copytree(os.path.realpath(link), copy)
    link.unlink()
    link.symlink_to(copy)
    (root / "sub-99999").mkdir()
    rep = wds.open_dataset(root).verify()
    assert rep.counts() == {"link": 1, "unlisted": 1}, str(rep)
    assert {p.path for p in rep.problems} == {f"{st['subject']}/{st['study']}", "sub-99999"}


def test_verify_finds_an_edited_manifest(small):
    lake, root = small
    make_writable(root)
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    # edit one listed digest: the file no longer matches, nor does the study digest
    entry = m["studies"][1]["series"][0]["files"][0]
    entry["sha256"] = hashlib.sha256(b"something else").hexdigest()
    path.write_text(json.dumps(m))
    assert _kinds(root) == {"sha256": 1, "study-digest": 1}
    # recompute the study digest too (as a forger would): now the Merkle root gives it away
    st = m["studies"][1]
    prefix = f"{st['subject']}/{st['study']}/"
    st["digest"] = service_manifest.study_digest(
        (f["path"][len(prefix):], f["size"], f["sha256"]) for se in st["series"] for f in se["files"])
    path.write_text(json.dumps(m))
    assert _kinds(root) == {"merkle-root": 1, "sha256": 1}


def test_verify_finds_a_missing_eform(small):
    lake, root = small
    make_writable(root)
    eforms = json.loads((root / "eforms.json").read_text())
    eforms.pop("sub-00002")
    (root / "eforms.json").write_text(json.dumps(eforms))
    rep = wds.open_dataset(root).verify()
    assert [(p.kind, p.detail) for p in rep.problems] == [("eform", "no clinical record for sub-00002")]


@pytest.mark.parametrize("bad", [
    "../../etc/passwd", "/etc/passwd", "sub-00001/study-01/series-01/../../../x.dcm",
    "sub-00002/study-01/series-01/0001.dcm",      # a file of another study
    "sub-00001/study-01/series-01/sub/0001.dcm",
])
def test_a_manifest_path_outside_its_series_is_refused(small, bad):
    lake, root = small
    make_writable(root)
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    st = next(s for s in m["studies"] if (s["subject"], s["study"]) == ("sub-00001", "study-01"))
    st["series"][0]["files"][0]["path"] = bad
    path.write_text(json.dumps(m))
    with pytest.raises(wds.DatasetError, match="not inside series"):
        wds.open_dataset(root)


def test_a_malformed_manifest_is_refused(small, tmp_path):
    lake, root = small
    make_writable(root)
    path = root / "manifest.json"
    good = path.read_text()
    for text in ("{", "[]", json.dumps({**json.loads(good), "format": "other/9"}),
                 json.dumps({**json.loads(good), "studies": "x"})):
        path.write_text(text)
        with pytest.raises(wds.DatasetError):
            wds.open_dataset(root)
    m = json.loads(good)
    m["studies"][0]["subject"] = ".."
    path.write_text(json.dumps(m))
    with pytest.raises(wds.DatasetError, match="bad subject"):
        wds.open_dataset(root)
    # a broken dataset is left out of the listing, the good ones stay
    assert wds.list_datasets(root.parent) == []
