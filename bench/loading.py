"""Benchmark: MONAI loading of DICOM series through a dataset's symlink tree vs straight from the lake,
and vs a plain pydicom loop, in the same run.

    .venv/bin/python bench/loading.py [--quick] [--subjects N] [--slices S] [--size P] [--rounds R]

Writes a demo lake (default 40 subjects of 48 × 128 × 128 volumes; --quick: 10 subjects of
24 × 64 × 64), builds one dataset of all its studies with the real builder (its study links point at
the lake's real folder, as they point at /mnt/datalake inside a workspace), takes the series items from
the workspace library, then times, in rounds, each volume loaded by each mode back to back (the order
rotating; per mode the median of the rounds' totals is kept, and the dataset/direct ratio is the
median of the per-round ratios):

1. ``monai-dataset``: ``LoadImage(reader="PydicomReader")`` of every series folder through the
   dataset tree (``<dataset>/<subject>/<study>`` -> lake);
2. ``monai-direct``: the same loader on the same series folders in the lake itself;
3. ``pydicom``: a plain loop — ``dcmread`` of each file the manifest lists, sorted by
   ``InstanceNumber``, rescaled and stacked with numpy (through the dataset tree).

Every mode loads the same volumes (checked: same shapes, same sums). The files are in the page cache
after the first (untimed) pass, so the figures compare the code paths, not the disk.
Last line: volumes/s of each and the ratios. Goal: monai-dataset >= 0.95 of monai-direct.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

from dataset_service import builder  # noqa: E402
from dataset_service.db import Database  # noqa: E402
from dataset_service.demo_lake import write_lake  # noqa: E402
from dataset_service.indexer import index_lake  # noqa: E402
from dataset_service.settings import Settings  # noqa: E402
from hub.workspace.datasets import open_dataset  # noqa: E402


def build(d: Path, subjects: int, slices: int, size: int) -> tuple[Path, Path]:
    lake = d / "lake"
    write_lake(lake, subjects, seed=3, slices=slices, size=size, workers=0)
    settings = Settings(lake_dir=lake, datasets_dir=d / "datasets", database_url=f"sqlite:///{d / 'db.sqlite'}",
                        lake_mount_path=os.path.realpath(lake), gid_min=991000, gid_max=991099, tracer_url="")
    db = Database(settings.database_url)
    db.upgrade()
    index_lake(settings, db, progress=False)
    dataset_id = builder.create_dataset(settings, db, actor="bench", name="bench", all_studies=True)
    state = builder.build(settings, db, dataset_id)
    db.dispose()
    if state != "draft":
        raise SystemExit(f"build ended {state}")
    return lake, d / "datasets" / dataset_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--subjects", type=int)
    ap.add_argument("--slices", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--rounds", type=int)
    a = ap.parse_args()
    subjects = a.subjects or (10 if a.quick else 40)
    slices = a.slices or (24 if a.quick else 48)
    size = a.size or (64 if a.quick else 128)
    rounds = a.rounds or (3 if a.quick else 5)

    warnings.filterwarnings("ignore")
    import torch
    from monai.transforms import LoadImage

    torch.set_num_threads(1)
    load = LoadImage(reader="PydicomReader", image_only=True)

    with tempfile.TemporaryDirectory(prefix="insitu-bench-loading-") as d:
        t = time.perf_counter()
        lake, root = build(Path(d), subjects, slices, size)
        setup = time.perf_counter() - t
        ds = open_dataset(root)
        items = ds.items()
        series = {s.series_id: s for s in ds.series}
        via_dataset = [it["image"] for it in items]
        direct = [str(lake / it["series_id"]) for it in items]
        assert all(os.path.islink(root / it["study_id"]) for it in items)

        def monai_load(path):
            return float(np.asarray(load(path)).sum())

        def pydicom_load(series_id):
            dss = sorted((pydicom.dcmread(ds.path(f.path)) for f in series[series_id].files),
                         key=lambda x: int(x.InstanceNumber))
            vol = np.stack([x.pixel_array.astype(np.float32) * float(getattr(x, "RescaleSlope", 1))
                            + float(getattr(x, "RescaleIntercept", 0)) for x in dss])
            return float(vol.sum())

        # one volume = one call per mode; per volume the modes run back to back (order rotating), so
        # load on the machine drifts over all of them alike
        modes = {"monai-dataset": (monai_load, via_dataset), "monai-direct": (monai_load, direct),
                 "pydicom": (pydicom_load, [it["series_id"] for it in items])}
        # untimed pass: page cache, imports, and the check that all modes load the same volumes
        sums = {m: [fn(x) for x in args] for m, (fn, args) in modes.items()}
        assert np.allclose(sums["monai-dataset"], sums["monai-direct"]) and \
            np.allclose(sums["monai-dataset"], sums["pydicom"]), "modes loaded different volumes"
        times: dict[str, list[float]] = {m: [] for m in modes}
        order = list(modes)
        clock = time.perf_counter
        for r in range(rounds):
            acc = dict.fromkeys(modes, 0.0)
            for i in range(len(items)):
                k = (r + i) % len(order)
                for m in order[k:] + order[:k]:
                    fn, args = modes[m]
                    t = clock()
                    fn(args[i])
                    acc[m] += clock() - t
            for m in modes:
                times[m].append(acc[m])
        n = len(items)
        vps = {m: n / statistics.median(ts) for m, ts in times.items()}
        # the ratio from paired rounds: each round's two totals saw the same load on the machine
        paired = statistics.median(d / v for d, v in zip(times["monai-direct"], times["monai-dataset"]))
        print(f"lake: {subjects} subjects, {n} series of {slices} x {size} x {size}, "
              f"{sum(s.n_files for s in series.values())} files, {sum(s.size for s in series.values()) / 1e6:.1f} MB; "
              f"lake + index + build {setup:.1f} s; {os.cpu_count()} cores; {rounds} rounds")
        for m, ts in times.items():
            print(f"{m:>14}: median {statistics.median(ts):.3f} s per pass of {n} (min {min(ts):.3f}, max {max(ts):.3f}) "
                  f"= {vps[m]:.1f} volumes/s")
        print(f"RESULT volumes={n} monai_dataset_vps={vps['monai-dataset']:.1f} "
              f"monai_direct_vps={vps['monai-direct']:.1f} pydicom_vps={vps['pydicom']:.1f} "
              f"ratio_dataset_vs_direct={paired:.3f} (goal >= 0.95) "
              f"ratio_monai_dataset_vs_pydicom={vps['monai-dataset'] / vps['pydicom']:.2f}")


if __name__ == "__main__":
    main()
