"""Automatic findings on real files written here (DICOM, arrays, tensors, tables, images)."""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from airlock_files import dicom_bytes, dicom_dataset
from dataset_service.airlock.findings import Limits, inspect_file, nifti_shape, npy_shape, pickled_shapes, thumbnail_png

LIMITS = Limits(large_file=1_000_000)


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def codes(path: Path, name: str | None = None, limits: Limits = LIMITS) -> set[str]:
    return inspect_file(path, name or path.name, limits).codes()


# --- DICOM ------------------------------------------------------------------
def test_dicom_file_with_preamble_is_flagged(tmp_path):
    p = write(tmp_path, "scan.dcm", dicom_bytes())
    assert pydicom.dcmread(p).PatientID == "sub-00007"  # really DICOM
    rep = inspect_file(p, "scan.dcm", LIMITS)
    assert rep.kind == "dicom" and "dicom" in rep.codes() and rep.severity == "high"


def test_dicom_without_preamble_and_renamed_is_flagged(tmp_path):
    for implicit in (False, True):
        p = write(tmp_path, f"innocent{implicit}.bin", dicom_bytes(preamble=False, implicit=implicit))
        assert p.read_bytes()[128:132] != b"DICM"
        c = codes(p)
        assert c & {"dicom", "dicom-embedded"}, (implicit, c)


def test_dicom_inside_npz_zip_and_gzip_is_flagged(tmp_path):
    raw = dicom_bytes()
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(raw, dtype=np.uint8), weights=np.zeros(10))
    assert "dicom-embedded" in codes(write(tmp_path, "model.npz", buf.getvalue()))

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("results/metrics.json", '{"dice": 0.8}')
        zf.writestr("results/slice_001.dcm", raw)
    rep = inspect_file(write(tmp_path, "results.zip", zbuf.getvalue()), "results.zip", LIMITS)
    assert rep.kind == "archive"
    assert any(f.code == "dicom" and f.member == "results/slice_001.dcm" for f in rep.findings)

    assert "dicom" in codes(write(tmp_path, "x.dcm.gz", gzip.compress(raw)))


def test_dicom_header_bytes_inside_a_pickle_are_flagged(tmp_path):
    raw = dicom_bytes(preamble=False)
    # a dict that carries a raw DICOM header as bytes, pickled
    p = write(tmp_path, "cache.pkl", pickle.dumps({"hdr": raw[:400], "score": 1}))
    assert "dicom-embedded" in codes(p)
    # a pickled pydicom data set
    ds = dicom_dataset()
    p2 = write(tmp_path, "ds.pkl", pickle.dumps(ds))
    assert codes(p2) & {"dicom-keywords", "dicom-embedded"}


def test_torch_checkpoint_with_dicom_bytes_is_flagged(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "ckpt.pt"
    torch.save({"hdr": torch.frombuffer(bytearray(dicom_bytes()), dtype=torch.uint8)}, p)
    assert "dicom-embedded" in codes(p)


# --- volumes ----------------------------------------------------------------
def test_volume_shaped_arrays_are_flagged(tmp_path):
    vol = np.zeros((40, 64, 64), dtype=np.int16)
    p = tmp_path / "vol.npy"
    np.save(p, vol)
    assert npy_shape(p.read_bytes()) == (40, 64, 64)
    assert "volume" in codes(p)

    p2 = tmp_path / "stack.npz"
    np.savez_compressed(p2, images=np.zeros((2, 1, 48, 48, 48), dtype=np.uint8), labels=np.arange(2))
    rep = inspect_file(p2, "stack.npz", LIMITS)
    assert any(f.code == "volume" and f.member == "images.npy" for f in rep.findings)

    p3 = write(tmp_path, "arr.pkl", pickle.dumps({"v": np.ones((33, 33, 33), dtype=np.uint8)}))
    assert pickled_shapes(p3.read_bytes()) == [("array", (33, 33, 33))]
    assert "volume" in codes(p3)


def test_torch_tensor_volume_is_flagged_but_model_weights_are_not(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "pred.pt"
    torch.save({"pred": torch.zeros(64, 64, 40)}, p)
    assert "volume" in codes(p)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 16, 3), torch.nn.ReLU(), torch.nn.Conv3d(16, 32, 3),
                              torch.nn.Flatten(), torch.nn.Linear(512, 2))
    w = tmp_path / "model.pt"
    torch.save(net.state_dict(), w)
    rep = inspect_file(w, "model.pt", LIMITS)
    assert rep.kind == "archive" and rep.findings == [], rep.findings


def test_small_arrays_are_not_flagged(tmp_path):
    p = tmp_path / "metrics.npy"
    np.save(p, np.zeros((10, 3, 3)))
    assert codes(p) == set()
    p2 = tmp_path / "features.npy"
    np.save(p2, np.zeros((200, 64), dtype=np.float32))
    assert codes(p2) == set()


def nifti1(shape: tuple[int, ...]) -> bytes:
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    dims = [len(shape), *shape] + [1] * (7 - len(shape))
    struct.pack_into("<8h", hdr, 40, *dims)
    struct.pack_into("<h", hdr, 70, 4)  # datatype int16
    struct.pack_into("<h", hdr, 72, 16)
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    hdr[344:348] = b"n+1\x00"
    n = 1
    for s in shape:
        n *= s
    return bytes(hdr) + bytes(2 * n)


def test_nifti_is_flagged_plain_and_gzipped(tmp_path):
    raw = nifti1((48, 48, 36))
    assert nifti_shape(raw) == (48, 48, 36)
    assert {"nifti", "volume"} <= codes(write(tmp_path, "seg.nii", raw))
    rep = inspect_file(write(tmp_path, "seg.nii.gz", gzip.compress(raw)), "seg.nii.gz", LIMITS)
    assert rep.kind == "nifti" and {"nifti", "volume"} <= rep.codes()


# --- size -------------------------------------------------------------------
def test_large_file_is_flagged(tmp_path):
    p = write(tmp_path, "blob.bin", b"\x01" * 1_000_001)
    assert "large-file" in codes(p)
    assert "large-file" not in codes(write(tmp_path, "small.bin", b"\x01" * 1000))


# --- tables -----------------------------------------------------------------
def test_table_with_identifier_columns_and_individual_rows(tmp_path):
    csv = "PatientID,PatientBirthDate,volume_ml\n" + "".join(
        f"sub-{i:05d},19{50 + i % 40}0101,{i * 1.5}\n" for i in range(30))
    rep = inspect_file(write(tmp_path, "volumes.csv", csv.encode()), "volumes.csv", LIMITS)
    assert rep.kind == "table"
    assert {"identifier-column", "subject-ids", "few-rows-per-subject"} <= rep.codes()
    assert rep.preview["header"] == ["PatientID", "PatientBirthDate", "volume_ml"]
    assert len(rep.preview["rows"]) == LIMITS.preview_rows and rep.preview["n_rows"] == 30


def test_subject_ids_under_an_innocent_header_are_found(tmp_path):
    csv = "case_ref;score\n" + "".join(f"sub-{i:05d};{i}\n" for i in range(12))
    c = codes(write(tmp_path, "scores.csv", csv.encode()))
    assert {"subject-ids", "few-rows-per-subject"} <= c


def test_aggregate_table_passes_and_small_counts_are_flagged(tmp_path):
    good = "cancer_type,n,mean_dice\nlung,120,0.81\nbrain,85,0.77\n"
    assert codes(write(tmp_path, "summary.csv", good.encode())) == set()
    bad = "cancer_type,n,mean_dice\nlung,120,0.81\nrare,2,0.5\n"
    assert "small-counts" in codes(write(tmp_path, "summary2.csv", bad.encode()))


def test_many_rows_per_subject_is_not_individual(tmp_path):
    csv = "subject,epoch,loss\n" + "".join(f"sub-{i % 3:05d},{i},{1 / (i + 1):.3f}\n" for i in range(60))
    c = codes(write(tmp_path, "curves.csv", csv.encode()))
    assert "few-rows-per-subject" not in c and "subject-ids" in c


# --- images -----------------------------------------------------------------
def test_png_and_jpeg_are_images_with_a_thumbnail(tmp_path):
    from PIL import Image

    im = Image.fromarray((np.arange(600 * 400) % 251).reshape(400, 600).astype(np.uint8))
    p = tmp_path / "fig.png"
    im.save(p)
    rep = inspect_file(p, "fig.png", LIMITS)
    assert rep.kind == "image" and rep.codes() == {"image"} and rep.preview == {"type": "image"}
    thumb = thumbnail_png(p)
    with Image.open(io.BytesIO(thumb)) as t:
        assert max(t.size) == 320
    assert thumb != p.read_bytes()
    j = tmp_path / "fig.jpg"
    im.convert("RGB").save(j, "JPEG")
    assert inspect_file(j, "fig.jpg", LIMITS).kind == "image"


def test_plain_text_and_json_pass(tmp_path):
    p = write(tmp_path, "metrics.json", b'{"dice": 0.83, "epochs": 40}\n')
    rep = inspect_file(p, "metrics.json", LIMITS)
    assert rep.kind == "text" and rep.findings == [] and rep.preview["type"] == "text"


# --- issue 18: volumes calibrated on the lake, compressed or encoded DICOM, opaque blobs -----------------
def test_a_small_volume_is_a_volume_when_the_lake_has_series_that_thin():
    import numpy as np

    from dataset_service.airlock.findings import Limits, inspect_file
    from dataset_service.airlock.settings import AirlockSettings

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "crop.npy"
        np.save(p, np.zeros((16, 32, 32), dtype=np.int16))
        lake_limits = AirlockSettings().limits(lake_min_slices=4)  # the lake's thinnest series: 4 slices
        assert lake_limits.volume_min_slices == 4
        assert "volume" in {f.code for f in inspect_file(p, "crop.npy", lake_limits).findings}
        assert AirlockSettings().limits(lake_min_slices=2).volume_min_slices == 4  # never below 4
        np.save(p, np.zeros((3, 32, 32), dtype=np.int16))  # three channels of an image: not a volume
        assert "volume" not in {f.code for f in inspect_file(p, "rgb.npy", lake_limits).findings}
        np.save(p, np.zeros((200, 3), dtype=np.float32))  # a feature table
        assert inspect_file(p, "features.npy", lake_limits).findings == []
        assert AirlockSettings(volume_min_slices=20).limits(lake_min_slices=4).volume_min_slices == 20


def test_compressed_and_encoded_dicom_is_found_and_opaque_blobs_are_flagged(tmp_path):
    import base64
    import bz2
    import lzma
    import os

    from airlock_files import dicom_bytes
    from dataset_service.airlock.findings import inspect_file

    dcm = dicom_bytes()
    cases = {"scan.dcm.xz": lzma.compress(dcm), "scan.bin.bz2": bz2.compress(dcm),
             "scan.b64": base64.encodebytes(dcm), "scan.hex.txt": dcm.hex().encode(),
             "scan.txt": base64.b64encode(lzma.compress(dcm))}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        rep = inspect_file(p, name)
        assert "dicom" in {f.code for f in rep.findings}, (name, rep.findings)
        assert max(f.severity == "high" for f in rep.findings)
    blob = tmp_path / "weights.bin"
    blob.write_bytes(os.urandom(64 * 1024))
    rep = inspect_file(blob, "weights.bin")
    assert [f.code for f in rep.findings] == ["opaque"] and rep.findings[0].severity == "medium"
    prose = tmp_path / "notes.txt"
    prose.write_bytes(b"The model reached an AUC of 0.81 on the held-out fold.\n" * 50)
    assert inspect_file(prose, "notes.txt").findings == []
    digest = tmp_path / "sha.txt"
    digest.write_bytes(b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n")
    assert inspect_file(digest, "sha.txt").findings == []
