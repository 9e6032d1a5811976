"""Benchmark: indexing the lake vs sha256sum over the same files, in the same run.

    .venv/bin/python bench/index.py [--quick] [--subjects N] [--size PX]

Writes a demo lake (realistic 16-bit slices, default 256x256), then times
1. the baseline: ``sha256sum`` over every DICOM file (one process, via xargs),
2. a first index (read, hash, header, database), 3. a re-index (cache only).
The page cache is warm for all three (the baseline runs first and after the lake is written).
Last line: figures and ratios. Goal: first index within 1.5x of sha256sum.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_service.db import Database  # noqa: E402
from dataset_service.demo_lake import write_lake  # noqa: E402
from dataset_service.indexer import index_lake  # noqa: E402
from dataset_service.settings import Settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--subjects", type=int)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=16)
    args = ap.parse_args()
    subjects = args.subjects or (40 if args.quick else 250)
    with tempfile.TemporaryDirectory(prefix="insitu-bench-index-") as d:
        d = Path(d)
        lake = d / "lake"
        t = time.perf_counter()
        n = write_lake(lake, subjects, seed=1, studies_per_subject=1, series_per_study=2, slices=args.slices,
                       size=args.size, workers=0)
        gen = time.perf_counter() - t
        files = sorted(str(p) for p in lake.rglob("*.dcm"))
        total = sum(os.path.getsize(f) for f in files)
        listing = d / "files.txt"
        listing.write_text("\0".join(files))
        cmd = f"xargs -0 -a {listing} sha256sum > /dev/null"
        subprocess.run(cmd, shell=True, check=True)  # warm the cache
        t = time.perf_counter()
        subprocess.run(cmd, shell=True, check=True)
        base = time.perf_counter() - t
        settings = Settings(lake_dir=lake, datasets_dir=d / "ds", database_url=f"sqlite:///{d / 'db.sqlite'}",
                            manage_lake_permissions=True)
        db = Database(settings.database_url)
        db.upgrade()
        t = time.perf_counter()
        st = index_lake(settings, db, progress=False)
        first = time.perf_counter() - t
        t = time.perf_counter()
        st2 = index_lake(settings, db, progress=False)
        again = time.perf_counter() - t
        assert st.files_hashed == n and st2.files_hashed == 0 and not st.skipped
        mb = total / 1e6
        print(f"lake: {n} files, {mb:.0f} MB ({args.size}x{args.size} slices), written in {gen:.1f} s; "
              f"{os.cpu_count()} cores")
        print(f"sha256sum: {base:.2f} s ({mb / base:.0f} MB/s); index: {first:.2f} s ({mb / first:.0f} MB/s, "
              f"{n / first:.0f} files/s); re-index: {again:.2f} s")
        print(f"RESULT index_s={first:.2f} sha256sum_s={base:.2f} ratio={first / base:.2f} (goal <= 1.5) "
              f"reindex_s={again:.2f} reindex_fraction={again / first:.3f}")


if __name__ == "__main__":
    main()
