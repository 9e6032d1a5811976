"""Automatic findings on a file frozen in the export airlock (a pure package: one module per family).

``inspect_file(path, name, limits)`` reads one frozen file (never the
workspace copy) and returns a :class:`FileReport`: the file's kind, its
findings and, for images and tables, what the review page may preview. It
never executes content: pickles are walked with an unpickler whose globals
are inert stubs, archives are read member by member with byte limits.

What is flagged (``Finding.code``; severity ``high`` > ``medium`` > ``info``)

==================  ======  ====================================================
code                sev.    when
==================  ======  ====================================================
dicom               high    ``DICM`` at offset 128, or the file parses as a DICOM
                            data set without preamble (pydicom, forced, with
                            identifying tags)
dicom-embedded      high    DICOM magic + file meta group, or at least two
                            DICOM data elements in explicit-VR byte form
                            (PatientName ``10 00 10 00 'PN'`` ...), or DICOM UID
                            roots ``1.2.840.10008.`` together with a tag, inside
                            the file or any archive member (.npz, .pt, zip, gz)
dicom-keywords      medium  DICOM attribute keywords (PatientID, StudyInstanceUID
                            ...) or ``pydicom`` classes inside a binary file
                            (e.g. a pickled pydicom data set)
large-file          medium  the file is larger than ``limits.large_file``
volume              high    an array whose two largest extents are at least
                            ``limits.volume_min_extent`` and a third at least
                            ``limits.volume_min_slices`` (the slices of the
                            lake's series) (.npy, .npz, .pt, pickles of numpy
                            arrays or torch tensors, NIfTI)
image-array         medium  a 2-D array with both extents at least
                            ``limits.image_min_extent``
nifti               high    a NIfTI-1/2 image (.nii, .nii.gz)
identifier-column   high    a table column named like a patient identifier,
                            name, birth date, MRN, accession number, UID
subject-ids         medium  table cells matching the lake's subject pattern
few-rows-per-subject high   a table with a subject column and a median of fewer
                            than ``limits.min_rows_per_subject`` rows per subject
small-counts        medium  a count column (n, count, n_*) holding values in
                            ``1 .. limits.min_cell_count - 1``
image               info    a PNG/JPEG image: a reviewer must look at it
opaque              medium  at least 4 KiB of a binary format the checker cannot
                            read with 7.5 bits of entropy per byte or more
                            (compressed or encrypted): ask what it is
                            (gzip, xz and bzip2 streams are decompressed and
                            base64 or hex text decoded, and what they hold is
                            checked like a file of its own)
unreadable          medium  an archive or table that could not be read whole
==================  ======  ====================================================

Invariants: the same bytes give the same report; a report lists each code at
most once per member; reading stops at ``limits.scan_bytes`` per member.

Modules: ``report`` (limits, findings, the report), ``dicom`` (DICOM files and DICOM bytes anywhere),
``arrays`` (array shapes in .npy, NIfTI and pickles, read without executing), ``tables`` (CSV/TSV
columns and cells), ``dispatch`` (which family a blob belongs to, archives and compressed or encoded
streams unpacked, ``inspect_file``, ``thumbnail_png``).
"""
from __future__ import annotations

from .arrays import nifti_shape, npy_shape, pickled_shapes
from .dicom import scan_dicom_bytes
from .dispatch import entropy, inspect_file, thumbnail_png
from .report import SEVERITIES, FileReport, Finding, Limits
from .tables import inspect_table

__all__ = ["SEVERITIES", "FileReport", "Finding", "Limits", "entropy", "inspect_file", "inspect_table",
           "nifti_shape", "npy_shape", "pickled_shapes", "scan_dicom_bytes", "thumbnail_png"]
