"""A synthetic, de-identified demo lake of real DICOM files (pydicom).

    write_lake(out, subjects=20, seed=1)

Layout (docs/CONTRACTS.md §2)::

    OUT/<subject>/eform.json
    OUT/<subject>/<study>/<series>/<instance>.dcm

Invariants
- Deterministic: the same arguments give byte-identical files. Every UID is
  ``2.25.<int>`` derived from a hash of (seed, path); dates come from the seed;
  nothing depends on the clock, the host or the order of work.
- Subject ``i`` depends only on (seed, i): a lake of N subjects is a prefix of a
  lake of M > N subjects with the same seed.
- Headers are consistent: one StudyInstanceUID/StudyDate per study, one
  SeriesInstanceUID/Modality/BodyPartExamined per series, one
  FrameOfReferenceUID per series, InstanceNumber and ImagePositionPatient
  follow the slice order; pixel data is a small synthetic volume (a body
  ellipse with a lesion) of ``slices`` × ``size`` × ``size`` 16-bit voxels.

Clinical signal
- The lesion's size follows the eForm's ``stage``: early stages (I, II) draw a
  radius of 6-12 % of the field of view, advanced stages (III, IV) 10-17 %
  (``LESION_RADIUS``). The ranges overlap and the lesion's place and the noise
  are random, so stage is a real but imperfect image signal (a classifier can
  learn "advanced" from the pixels, not perfectly). Nothing else in the pixels
  depends on the eForm; the modality follows the cancer type (about 80 %).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

CANCERS = {
    # cancer type: (body part, preferred modality)
    "lung": ("CHEST", "CT"),
    "colorectal": ("ABDOMEN", "CT"),
    "prostate": ("PELVIS", "MR"),
    "breast": ("BREAST", "MR"),
    "glioma": ("HEAD", "MR"),
}
AGE_GROUPS = ["30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
BASE_DATE = dt.date(2015, 1, 1)
STAGES = ["I", "II", "III", "IV"]
ADVANCED_STAGES = frozenset({"III", "IV"})
# lesion radius as a fraction of the image size: (low, high) for early and for advanced stages
LESION_RADIUS = {False: (0.06, 0.12), True: (0.10, 0.17)}


@dataclass(frozen=True)
class LakeSpec:
    seed: int = 0
    studies_per_subject: int = 0  # 0: 1 or 2 at random
    series_per_study: int = 2
    slices: int = 16
    size: int = 32


def uid(seed: int, *parts: object) -> str:
    h = hashlib.sha256(("insitu-demo:%d:" % seed + "/".join(map(str, parts))).encode()).digest()
    return "2.25." + str(int.from_bytes(h[:16], "big"))


def subject_name(i: int) -> str:
    return f"sub-{i:05d}"


def _volume(rng: np.random.Generator, modality: str, slices: int, size: int, advanced: bool) -> np.ndarray:
    z, y, x = np.mgrid[0:slices, 0:size, 0:size].astype(np.float32)
    cy, cx = (size - 1) / 2, (size - 1) / 2
    body = ((y - cy) / (0.42 * size)) ** 2 + ((x - cx) / (0.46 * size)) ** 2 <= 1.0
    lz, ly, lx = rng.uniform(0.3, 0.7) * slices, rng.uniform(0.35, 0.65) * size, rng.uniform(0.35, 0.65) * size
    r = rng.uniform(*LESION_RADIUS[advanced]) * size
    lesion = ((z - lz) * size / max(slices, 1)) ** 2 + (y - ly) ** 2 + (x - lx) ** 2 <= r * r
    noise = rng.normal(0, 12, size=(slices, size, size)).astype(np.float32)
    if modality == "CT":  # Hounsfield units stored with RescaleIntercept -1024
        hu = np.where(body, 40.0, -1000.0) + np.where(lesion, 60.0, 0.0) + noise
        return np.clip(hu + 1024, 0, 4095).astype(np.uint16)
    sig = np.where(body, 600.0, 5.0) + np.where(lesion, 500.0, 0.0) + noise
    return np.clip(sig, 0, 4095).astype(np.uint16)


def _eform(seed: int, subject: str, rng: random.Random, cancer: str, diagnosis: dt.date) -> dict:
    return {
        "subject_id": subject,
        "cancer_type": cancer,
        "age_group": rng.choice(AGE_GROUPS),
        "sex": "F" if cancer == "breast" else ("M" if cancer == "prostate" else rng.choice("FM")),
        "diagnosis_date": diagnosis.isoformat(),
        "stage": rng.choice(STAGES),
        "follow_up": {
            "months": rng.randint(1, 60),
            "status": rng.choice(["alive, no disease", "alive with disease", "deceased"]),
        },
    }


def write_subject(out: Path, i: int, spec: LakeSpec) -> int:
    """Write subject ``i``; returns the number of DICOM files written."""
    seed = spec.seed
    subject = subject_name(i)
    rng = random.Random(f"{seed}:{i}")
    nprng = np.random.default_rng([seed & 0xFFFFFFFF, i])
    cancer = rng.choice(sorted(CANCERS))
    body_part, modality_pref = CANCERS[cancer]
    diagnosis = BASE_DATE + dt.timedelta(days=rng.randrange(0, 3000))
    sdir = out / subject
    sdir.mkdir(parents=True, exist_ok=True)
    eform = _eform(seed, subject, rng, cancer, diagnosis)
    (sdir / "eform.json").write_text(json.dumps(eform, indent=2, sort_keys=True) + "\n")
    advanced = eform["stage"] in ADVANCED_STAGES
    n_studies = spec.studies_per_subject or rng.choice([1, 2])
    written = 0
    for k in range(1, n_studies + 1):
        study_date = diagnosis + dt.timedelta(days=(k - 1) * rng.randrange(60, 240))
        modality = modality_pref if rng.random() < 0.8 else ("MR" if modality_pref == "CT" else "CT")
        study = f"study-{k:02d}"
        study_uid = uid(seed, subject, study)
        for s in range(1, spec.series_per_study + 1):
            series = f"series-{s:02d}"
            written += _write_series(out, subject, study, series, study_uid, study_date, modality, body_part,
                                     k, s, spec, nprng, advanced)
    return written


def _write_series(out: Path, subject: str, study: str, series: str, study_uid: str, date: dt.date,
                  modality: str, body_part: str, k: int, s: int, spec: LakeSpec, rng, advanced: bool) -> int:
    seed = spec.seed
    vol = _volume(rng, modality, spec.slices, spec.size, advanced)
    folder = out / subject / study / series
    folder.mkdir(parents=True, exist_ok=True)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    series_uid = uid(seed, subject, study, series)
    frame_uid = uid(seed, subject, study, series, "frame")
    dicom_date = date.strftime("%Y%m%d")
    spacing = 2.5
    for n in range(spec.slices):
        sop_uid = uid(seed, subject, study, series, n + 1)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "INSITU_DEMO_1"
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = dicom_date
        ds.StudyTime = ds.SeriesTime = "%02d%02d00" % (8 + k, 10 + s)
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.Manufacturer = "insitu synthetic"
        ds.StudyDescription = f"{body_part.title()} {modality} {k}"
        ds.SeriesDescription = f"{modality} {'axial' if s % 2 else 'axial post-contrast'}"
        ds.PatientName = subject
        ds.PatientID = subject
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "synthetic data"
        ds.BodyPartExamined = body_part
        ds.SliceThickness = spacing
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = str(k)
        ds.SeriesNumber = s
        ds.InstanceNumber = n + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.ImagePositionPatient = [0.0, 0.0, round(n * spacing, 2)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceLocation = round(n * spacing, 2)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = spec.size
        ds.PixelSpacing = [1.0, 1.0]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        if modality == "CT":
            ds.RescaleIntercept = -1024
            ds.RescaleSlope = 1
            ds.KVP = 120
        else:
            ds.MagneticFieldStrength = 1.5
            ds.EchoTime = 90
            ds.RepetitionTime = 4000
        ds.PixelData = vol[n].tobytes()
        ds.save_as(folder / f"{n + 1:04d}.dcm", enforce_file_format=True)
    return spec.slices


def _write_range(args) -> int:
    out, start, stop, spec = args
    return sum(write_subject(Path(out), i, spec) for i in range(start, stop))


def write_lake(out: Path | str, subjects: int, seed: int = 0, *, studies_per_subject: int = 0,
               series_per_study: int = 2, slices: int = 16, size: int = 32, workers: int = 1) -> int:
    """Write a demo lake of ``subjects`` subjects into ``out``; returns the file count."""
    if subjects < 0 or series_per_study < 1 or slices < 1 or not 8 <= size <= 1024:
        raise ValueError("subjects >= 0, series >= 1, slices >= 1, 8 <= size <= 1024")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = LakeSpec(seed, studies_per_subject, series_per_study, slices, size)
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or subjects < 8:
        return _write_range((str(out), 1, subjects + 1, spec))
    step = max(1, subjects // (workers * 8))
    chunks = [(str(out), a, min(a + step, subjects + 1), spec) for a in range(1, subjects + 1, step)]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_write_range, chunks))
