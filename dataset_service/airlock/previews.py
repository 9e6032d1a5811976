"""What a reviewer sees of a frozen file besides its findings: previews built from the frozen copy, never
its bytes. Arrays: shape, dtype, statistics and a picture of the middle slice (downscaled PNG); DICOM: a
header dump without pixel data; notebooks: each cell's source and its outputs as text (images named, not
shown). Each function returns None when it cannot read the file: no preview, never an error."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

MAX_ELEMENTS = 80
MAX_VALUE = 120
MAX_CELLS = 60
MAX_TEXT = 2000


def _load_array(path: Path):
    import numpy as np

    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:  # noqa: BLE001 - not a plain .npy array: no preview
        return None


def array_preview(path: Path) -> dict[str, Any] | None:
    import numpy as np

    a = _load_array(path)
    if a is None or not hasattr(a, "shape"):
        return None
    out: dict[str, Any] = {"type": "array", "shape": list(a.shape), "dtype": str(a.dtype), "size": int(a.size)}
    if a.size and np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.complexfloating):
        sample = np.asarray(a.reshape(-1)[:: max(1, a.size // 1_000_000)], dtype=np.float64)
        finite = sample[np.isfinite(sample)]
        if finite.size:
            out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                       std=float(finite.std()))
        out["image"] = a.ndim >= 2 and min(a.shape[-2:]) >= 2
    return out


def array_slice_png(path: Path, max_px: int = 320) -> bytes | None:
    """The middle 2-D slice of an array, scaled to 0..255 and downscaled, as PNG."""
    import numpy as np
    from PIL import Image

    a = _load_array(path)
    if a is None or a.ndim < 2 or min(a.shape[-2:]) < 2:
        return None
    while a.ndim > 2:
        a = a[a.shape[0] // 2]
    x = np.asarray(a, dtype=np.float64)
    x = np.nan_to_num(x)
    lo, hi = float(x.min()), float(x.max())
    img = np.zeros(x.shape, np.uint8) if hi <= lo else ((x - lo) / (hi - lo) * 255).astype(np.uint8)
    im = Image.fromarray(img, mode="L")
    im.thumbnail((max_px, max_px))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def dicom_preview(path: Path) -> dict[str, Any] | None:
    import warnings

    import pydicom

    rows = []
    try:  # elements are parsed lazily: a damaged or disguised file fails here, not at the read
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            n = 0
            for el in ds.iterall():
                n += 1
                if len(rows) >= MAX_ELEMENTS:
                    continue
                value = "<sequence>" if el.VR == "SQ" else str(el.value)
                rows.append([f"({el.tag.group:04X},{el.tag.element:04X})", el.keyword or "", str(el.VR),
                             value[:MAX_VALUE] + ("…" if len(value) > MAX_VALUE else "")])
    except Exception:  # noqa: BLE001
        return None
    return {"type": "dicom", "elements": rows, "n_elements": n}


def notebook_preview(data: bytes) -> dict[str, Any] | None:
    try:
        nb = json.loads(data)
        cells = nb["cells"]
    except Exception:  # noqa: BLE001 - not a notebook
        return None
    if not isinstance(cells, list):
        return None
    out = []
    for c in cells[:MAX_CELLS]:
        if not isinstance(c, dict):
            continue
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        outputs = []
        for o in c.get("outputs", []) or []:
            if not isinstance(o, dict):
                continue
            data_ = o.get("data") or {}
            if any(k.startswith("image/") for k in data_):
                kinds = ", ".join(k for k in data_ if k.startswith("image/"))
                outputs.append({"kind": "image", "text": f"an image output ({kinds}): open the notebook to see it"})
            text = o.get("text") or data_.get("text/plain") or o.get("evalue") or ""
            text = "".join(text) if isinstance(text, list) else str(text)
            if text:
                outputs.append({"kind": "text", "text": text[:MAX_TEXT]})
        out.append({"type": str(c.get("cell_type", "")), "source": src[:MAX_TEXT], "outputs": outputs})
    return {"type": "notebook", "cells": out, "n_cells": len(cells)}
