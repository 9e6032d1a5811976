"""The library's MONAI reader (hub/workspace/monai_reader.py) gives what MONAI's PydicomReader gives.

Same array (values and dtype), same affine, same metadata, on the demo lake's series through a dataset
and on series written here with what the demo lake does not have (signed pixels with unused high
bits, rescale, 8 bits, MONOCHROME1, colour, multi-frame), where the reader either reads the pixels
directly or must hand over to pydicom's ``pixel_array``.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

from hub.workspace import datasets as wds
from hub.workspace.monai_reader import SeriesReader, native_pixels

monai_transforms = pytest.importorskip("monai.transforms")


def same_image(series: str | list[str], reader: SeriesReader | None = None) -> None:
    want = monai_transforms.LoadImage(reader="PydicomReader", image_only=True)(series)
    got = monai_transforms.LoadImage(reader=reader or SeriesReader(), image_only=True)(series)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.as_tensor(), want.as_tensor())
    assert torch.equal(got.affine, want.affine)
    gm, wm = dict(got.meta), dict(want.meta)
    assert gm.keys() == wm.keys()
    for k in wm:
        assert repr(gm[k]) == repr(wm[k]), k


def test_the_demo_series_through_a_dataset_load_as_with_pydicomreader(demo):
    _, root = demo
    items = wds.open_dataset(root).items()
    for item in random.Random(5).sample(items, 8):
        same_image(item["image"])


def test_a_reader_configuration_is_kept(demo):
    _, root = demo
    item = wds.open_dataset(root).items()[0]
    want = monai_transforms.LoadImage(reader="PydicomReader", image_only=True, affine_lps_to_ras=False,
                                      swap_ij=False, prune_metadata=False)(item["image"])
    got = monai_transforms.LoadImage(reader=SeriesReader(affine_lps_to_ras=False, swap_ij=False, prune_metadata=False),
                                     image_only=True)(item["image"])
    assert torch.equal(got.as_tensor(), want.as_tensor()) and torch.equal(got.affine, want.affine)
    assert sorted(got.meta) == sorted(want.meta) and len(got.meta) > 20  # the whole header, as MONAI keeps it


def write_slice(path: Path, n: int, *, bits=16, stored=16, signed=False, photometric="MONOCHROME2", samples=1,
                frames=1, rescale=None, pixels: np.ndarray, syntax=ExplicitVRLittleEndian) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPInstanceUID, ds.SOPClassUID = meta.MediaStorageSOPInstanceUID, meta.MediaStorageSOPClassUID
    ds.Modality, ds.InstanceNumber = "CT", n
    ds.ImagePositionPatient = [-10.0, 5.0, 2.5 * n]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.8]
    ds.Rows, ds.Columns = pixels.shape[-2] if samples == 1 else pixels.shape[-3], \
        pixels.shape[-1] if samples == 1 else pixels.shape[-2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = int(signed)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if syntax == RLELossless:
        ds.compress(RLELossless, pixels, encoding_plugin="pydicom")
    else:
        ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def write_series(folder: Path, kind: dict, dtype: str, shape=(6, 5), count=4, seed=0, high=None) -> Path:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    for n in range(1, count + 1):
        px = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True) if high is None else \
            rng.integers(0, high, size=shape, dtype=dtype)
        write_slice(folder / f"{n:03d}.dcm", count + 1 - n, pixels=px, **kind)  # files not in instance order
    return folder


NATIVE = {
    "signed 12 of 16 bits, unused bits set, rescaled": ({"stored": 12, "signed": True, "rescale": (2.0, -1024.0)}, "int16"),
    "unsigned 12 of 16 bits, unused bits set": ({"stored": 12}, "uint16"),
    "signed 16 bits": ({"signed": True}, "int16"),
    "8 bits, MONOCHROME1": ({"bits": 8, "stored": 8, "photometric": "MONOCHROME1"}, "uint8"),
    "32 bits, slope only": ({"bits": 32, "stored": 32, "rescale": (0.5, 0.0)}, "uint32"),
    "implicit VR": ({"syntax": ImplicitVRLittleEndian}, "uint16"),
}


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_pixels_read_directly_are_pydicoms(tmp_path, name):
    kind, dtype = NATIVE[name]
    folder = write_series(tmp_path / "s", kind, dtype)
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        got, want = native_pixels(ds), ds.pixel_array
        assert got is not None, "read directly"
        assert got.dtype == want.dtype and np.array_equal(got, want)
    same_image(str(folder))


HANDED_OVER = {
    "RLE compressed": ({"syntax": RLELossless}, "uint16"),
    "colour": ({"bits": 8, "stored": 8, "samples": 3, "photometric": "RGB"}, "uint8"),
}


@pytest.mark.parametrize("name", sorted(HANDED_OVER))
def test_other_pixels_are_handed_to_pydicom(tmp_path, name):
    kind, dtype = HANDED_OVER[name]
    shape = (6, 5, 3) if kind.get("samples") else (6, 5)
    folder = write_series(tmp_path / "s", kind, dtype, shape=shape, high=200)
    assert native_pixels(pydicom.dcmread(next(folder.iterdir()))) is None
    same_image(str(folder))


def test_a_single_file_and_a_multiframe_file_load_as_with_pydicomreader(tmp_path):
    write_series(tmp_path / "one", {"stored": 12, "signed": True, "rescale": (1.0, -1000.0)}, "int16", count=1)
    same_image(str(tmp_path / "one" / "001.dcm"))
    px = np.arange(3 * 6 * 5, dtype="uint16").reshape(3, 6, 5)
    write_slice(tmp_path / "multi.dcm", 1, frames=3, pixels=px)
    assert native_pixels(pydicom.dcmread(tmp_path / "multi.dcm")) is None
    same_image(str(tmp_path / "multi.dcm"))
