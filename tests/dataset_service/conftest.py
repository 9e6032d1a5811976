"""Fixtures of the dataset service tests: a small demo lake, settings in tmp dirs, a database."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dataset_service.db import Database
from dataset_service.demo_lake import write_lake
from dataset_service.indexer import index_lake
from dataset_service.settings import Settings

SMALL = dict(series_per_study=2, slices=4, size=16)


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lake-template") / "lake"
    write_lake(out, 6, seed=7, **SMALL)
    return out


@pytest.fixture
def open_tmp():
    """A tmp folder whose parents other uids can traverse (pytest's tmp_path sits under a 0700 folder)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="insitu-ds-test-"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env(tmp_path, lake_template):
    """(settings, db) over a private copy of the demo lake, migrated and indexed."""
    lake = tmp_path / "lake"
    shutil.copytree(lake_template, lake)
    settings = Settings(lake_dir=lake, datasets_dir=tmp_path / "datasets",
                        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", gid_min=930000, gid_max=930099,
                        tracer_url="")
    db = Database(settings.database_url)
    db.upgrade()
    index_lake(settings, db, progress=False)
    yield settings, db
    db.dispose()


def study_ids(db) -> list[str]:
    from sqlalchemy import select

    from dataset_service.models import Study

    with db.session() as s:
        return list(s.scalars(select(Study.id).order_by(Study.id)))
