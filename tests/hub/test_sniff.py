"""hub.sniff: data files recognised by content, not by name (the workspace gateway's rules)."""
from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hub import sniff

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_support import write_dicom  # noqa: E402


@pytest.fixture(scope="module")
def dicom_bytes(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("dcm") / "x.dcm"
    write_dicom(p, "subj-1", "1.2.3", "1.2.3.4", 1)
    return p.read_bytes()


def npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    return buf.getvalue()


def npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(10))
    return buf.getvalue()


def nifti1() -> bytes:
    hdr = bytearray(352)
    hdr[0:4] = (348).to_bytes(4, "little")
    hdr[344:348] = b"n+1\0"
    return bytes(hdr)


def contents(data: bytes, fmt: str = "base64", kind: str = "file") -> bytes:
    content = base64.b64encode(data).decode() if fmt == "base64" else data.decode()
    return json.dumps({"type": kind, "format": fmt, "content": content, "name": "x"}).encode()


def test_kinds_by_magic(dicom_bytes):
    assert sniff.kind_of(dicom_bytes) == "dicom"
    assert sniff.kind_of(npy_bytes()) == "numpy"
    assert sniff.kind_of(npz_bytes()) == "zip"
    assert sniff.kind_of(nifti1()) == "nifti"
    assert sniff.kind_of(b"\x89HDF\r\n\x1a\n" + b"\0" * 10) == "hdf5"
    assert sniff.kind_of(b"\x1f\x8b\x08\0") == "gzip"
    for harmless in (b"print('hello')\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, b"<!doctype html>", b""):
        assert sniff.kind_of(harmless) is None


def test_contents_api_answers_are_decoded_and_refused_by_content_not_name(dicom_bytes):
    # a DICOM file saved as notes.txt is still a DICOM file
    assert sniff.inspect("api/contents/notes.txt", "application/json", contents(dicom_bytes)) == ("dicom", "contents")
    assert sniff.inspect("api/contents/a.bin", "application/json", contents(npy_bytes())) == ("numpy", "contents")
    assert sniff.inspect("api/contents/plot.png", "application/json",
                         contents(b"\x89PNG\r\n\x1a\n" + b"\1" * 500)) is None
    assert sniff.inspect("api/contents/x.py", "application/json", contents(b"print(1)\n", "text")) is None
    nb = json.dumps({"type": "notebook", "content": {"cells": []}}).encode()
    assert sniff.inspect("api/contents/x.ipynb", "application/json", nb) is None
    listing = json.dumps({"type": "directory", "content": [{"name": "scan.dcm"}]}).encode()
    assert sniff.inspect("api/contents/", "application/json", listing) is None


def test_large_binaries_are_refused_on_data_paths_only():
    blob = bytes(range(256)) * 64  # 16 KiB of binary
    assert sniff.inspect("api/contents/w.bin", "application/json", contents(blob), large=8192) == \
        ("large-binary", "contents")
    assert sniff.inspect("api/contents/w.bin", "application/json", contents(blob), large=1 << 20) is None
    text = b"a,b,c\n" * 4000
    assert sniff.inspect("api/contents/t.csv", "application/json", contents(text), large=8192) is None
    assert sniff.inspect("files/w.bin", "application/octet-stream", blob, large=8192) == ("large-binary", "http")
    assert sniff.inspect("static/lab/main.js", "text/javascript", blob, large=8192) is None


def test_raw_answers_are_refused_by_magic_on_every_path(dicom_bytes):
    for path in ("files/scan.dcm", "static/x.css", "anything/at/all", ""):
        assert sniff.inspect(path, "text/plain", dicom_bytes) == ("dicom", "http")


def test_relative_paths_are_normalised():
    assert sniff.relative("/user/alice//api/contents/a%20b.dcm", "/user/alice/") == "api/contents/a b.dcm"
    assert sniff.relative("/user/alice/", "/user/alice/") == ""
