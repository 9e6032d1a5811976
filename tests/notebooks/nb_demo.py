"""A real demo lake and a real dataset built over it by the dataset service, for the workspace tests.

The dataset's study links point at ``lake_mount_path``; here that is the lake's
real folder, so they resolve outside a sandbox (in a workspace the lake is
mounted at /mnt/datalake and the links point there).
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

from dataset_service import builder
from dataset_service.db import Database
from dataset_service.demo_lake import write_lake
from dataset_service.indexer import index_lake
from dataset_service.settings import Settings

_gids = itertools.count(0)


def build_dataset(lake: Path, mount: Path, db_path: Path, *, name: str = "demo", study_ids: list[str] | None = None,
                  lake_mount_path: str | None = None) -> Path:
    """Index ``lake`` and build one dataset (all studies, or ``study_ids``) into ``mount``; its folder."""
    base = 940000 + 100 * (os.getpid() % 500) + 10 * (next(_gids) % 10)
    settings = Settings(lake_dir=lake, datasets_dir=mount, database_url=f"sqlite:///{db_path}",
                        lake_mount_path=lake_mount_path or os.path.realpath(lake),
                        gid_min=base, gid_max=base + 9, tracer_url="")
    db = Database(settings.database_url)
    try:
        db.upgrade()
        index_lake(settings, db, progress=False)
        dataset_id = builder.create_dataset(settings, db, actor="tests", name=name, study_ids=study_ids,
                                            all_studies=study_ids is None)
        state = builder.build(settings, db, dataset_id)
        if state != "draft":
            raise RuntimeError(f"build of {dataset_id} ended {state}")
    finally:
        db.dispose()
    return mount / dataset_id


def demo_dataset(root: Path, subjects: int, seed: int, **lake_kw) -> tuple[Path, Path]:
    """(lake, dataset folder) under ``root``: a demo lake of ``subjects`` and a dataset of all its studies."""
    lake = root / "lake"
    write_lake(lake, subjects, seed, workers=2, **lake_kw)
    return lake, build_dataset(lake, root / "datasets", root / "catalogue.sqlite")
