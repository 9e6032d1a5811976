"""Real files for the airlock tests: DICOM written with pydicom, images, arrays."""
from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid


def dicom_dataset(rows: int = 16) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "sub-00007"
    ds.PatientID = "sub-00007"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(rows * rows, dtype=np.uint16).tobytes()
    return ds


def dicom_bytes(preamble: bool = True, implicit: bool = False) -> bytes:
    ds = dicom_dataset()
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = io.BytesIO()
    if preamble:
        ds.save_as(buf, enforce_file_format=True)
    else:
        ds.save_as(buf, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    return buf.getvalue()



def png_bytes(w: int = 400, h: int = 300) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.arange(w * h) % 253).reshape(h, w).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def npy_bytes(shape) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=np.uint8))
    return buf.getvalue()
