"""The library's MONAI reader for the series of a dataset: MONAI's ``PydicomReader``, minus its overheads.

    >>> from monai.transforms import LoadImaged
    >>> from insitu_workspace.monai_reader import SeriesReader     # hub.workspace.monai_reader in a checkout
    >>> load = LoadImaged(keys="image", reader=SeriesReader(), image_only=True)
    >>> load(ds.items()[0])["image"]            # a MetaTensor, as with reader="PydicomReader"

``SeriesReader`` is ``monai.data.PydicomReader`` (same arguments, same ``read`` of a series
folder, same sorting by InstanceNumber, same spacing, affine, ``spatial_shape`` and
``original_channel_dim``: MONAI's own code computes them), with two of its steps done
directly:

* pixels: for uncompressed little-endian monochrome single-frame images (what the lake
  holds) the pixel data is read with ``numpy.frombuffer`` and its unused high bits are
  cleared as pydicom clears them (``Bits Stored`` < ``Bits Allocated``), instead of going
  through ``Dataset.pixel_array``, whose decoder set-up costs more than the reading itself and
  which ``PydicomReader`` asks for twice per file (``hasattr``, then the value). Anything else
  (compressed, colour, multi-frame, big-endian, float pixels) goes through ``pixel_array``
  as before;
* metadata: with ``prune_metadata`` (the default) only the tags ``PydicomReader`` keeps are
  converted to their DICOM-JSON form, instead of the whole first header (pixel data
  included, base64-encoded) before the rest is thrown away.

The result is the same array and the same metadata as ``PydicomReader`` gives
(``tests/notebooks/test_nb_library.py`` compares them), in less time (``bench/loading.py``).
"""
from __future__ import annotations

import numpy as np
from monai.data import PydicomReader

__all__ = ["SeriesReader"]

# the tags PydicomReader keeps when it prunes the metadata (orientation, position, spacing, and the
# segmentation's functional groups), as DICOM-JSON keys
_PRUNED = ("00200037", "00200032", "00280030", "52009229", "52009230")
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # implicit / explicit VR little endian
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def native_pixels(ds) -> np.ndarray | None:
    """The pixel array of an uncompressed little-endian monochrome single-frame image, as
    ``ds.pixel_array`` returns it (same dtype, same values); None for anything else."""
    meta = getattr(ds, "file_meta", None)
    tsuid = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsuid not in _NATIVE_LE or "PixelData" not in ds:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.PixelRepresentation) == 1
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.PhotometricInterpretation)
    except (AttributeError, TypeError, ValueError):
        return None
    if samples != 1 or frames != 1 or photometric not in _MONOCHROME or allocated not in (8, 16, 32) \
            or not 0 < stored <= allocated:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    raw = ds.PixelData
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < rows * cols * dtype.itemsize:
        return None
    arr = np.frombuffer(raw, dtype=dtype, count=rows * cols).reshape(rows, cols).astype(dtype.newbyteorder("="))
    if stored < allocated:  # pydicom's correction of the unused bits (sign-extends a signed value)
        shift = allocated - stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


class SeriesReader(PydicomReader):
    """``monai.data.PydicomReader`` with direct pixel and metadata reading (see the module doc)."""

    def _get_array_data(self, img, filename):
        data = None if self.to_gpu else native_pixels(img)
        if data is None:
            return super()._get_array_data(img, filename)
        # the rescale exactly as PydicomReader applies it
        slope = img.RescaleSlope if "RescaleSlope" in img else None
        offset = img.RescaleIntercept if "RescaleIntercept" in img else None
        if slope is None and offset is None:
            return data
        return data.astype(np.float32) * (1.0 if slope is None else slope) + (0.0 if offset is None else offset)

    def _get_meta_dict(self, img) -> dict:
        if not self.prune_metadata:
            return super()._get_meta_dict(img)
        out = {}
        for key in _PRUNED:
            tag = int(key, 16)
            if tag in img:
                out[key] = img[tag].to_json_dict(None, 1024)
        return out
