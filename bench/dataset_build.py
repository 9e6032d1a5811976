"""Benchmark: building a dataset of many studies vs a bare ``os.symlink`` loop, in the same run.

    .venv/bin/python bench/dataset_build.py [--quick] [--studies N]

Writes a demo lake of N one-series, one-slice studies (default 10,000; 2,000
with --quick), indexes it, then times
1. the baseline: a plain loop of ``os.symlink`` for the same N links (with the
   subject folders they need) into an empty folder,
2. the whole build: path checks, per-file catalogue checks, ACL entries
   ``group:<gid>`` on every study folder, series folder and file, links,
   manifest.json, eforms.json, sealing the tree read-only, rename, database.
Last line: figures and ratio. Goals: build under 30 s and within 5x of the loop.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from dataset_service import builder  # noqa: E402
from dataset_service.db import Database  # noqa: E402
from dataset_service.demo_lake import write_lake  # noqa: E402
from dataset_service.indexer import index_lake  # noqa: E402
from dataset_service.models import Dataset, Study  # noqa: E402
from dataset_service.settings import Settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--studies", type=int)
    args = ap.parse_args()
    n = args.studies or (2000 if args.quick else 10000)
    with tempfile.TemporaryDirectory(prefix="insitu-bench-build-") as d:
        d = Path(d)
        lake = d / "lake"
        t = time.perf_counter()
        write_lake(lake, n, seed=2, studies_per_subject=1, series_per_study=1, slices=1, size=8, workers=0)
        gen = time.perf_counter() - t
        settings = Settings(lake_dir=lake, datasets_dir=d / "datasets", database_url=f"sqlite:///{d / 'db.sqlite'}",
                            max_studies_per_request=max(n, 100000), gid_min=990000, gid_max=990999)
        db = Database(settings.database_url)
        db.upgrade()
        t = time.perf_counter()
        index_lake(settings, db, progress=False)
        idx = time.perf_counter() - t
        with db.session() as s:
            ids = list(s.scalars(select(Study.id).order_by(Study.id)))
        assert len(ids) == n

        base_dir = d / "baseline"
        base_dir.mkdir()
        t = time.perf_counter()
        made = set()
        for sid in ids:
            subject, study = sid.split("/")
            if subject not in made:
                os.mkdir(base_dir / subject)
                made.add(subject)
            os.symlink(f"/mnt/datalake/{sid}", base_dir / subject / study)
        base = time.perf_counter() - t

        t = time.perf_counter()
        i = builder.create_dataset(settings, db, actor="bench", name="bench", all_studies=True)
        state = builder.build(settings, db, i)
        full = time.perf_counter() - t
        with db.session() as s:
            ds = s.get(Dataset, i)
            assert state == "draft", ds.error
            assert ds.n_studies == n
        print(f"lake: {n} studies written in {gen:.1f} s, indexed in {idx:.1f} s; {os.cpu_count()} cores")
        print(f"os.symlink loop: {base:.3f} s; full build (create + build): {full:.2f} s")
        print(f"RESULT studies={n} build_s={full:.2f} (goal < 30) symlink_loop_s={base:.3f} "
              f"ratio={full / base:.1f} (goal <= 5)")


if __name__ == "__main__":
    main()
