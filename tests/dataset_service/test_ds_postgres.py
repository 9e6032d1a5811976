"""The same storage paths against a throwaway PostgreSQL 15 cluster (Debian's binaries)."""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, inspect, select

from dataset_service import builder, operations
from dataset_service.db import Database
from dataset_service.indexer import index_lake
from dataset_service.models import Dataset, DatasetState, File, Study
from dataset_service.settings import Settings

pytestmark = pytest.mark.postgres


# pg_url: a fresh database in the session's throwaway cluster (tests/fixtures/postgres.py)


def test_postgres_storage(pg_url, tmp_path, lake_template):
    shutil.copytree(lake_template, tmp_path / "lake")
    settings = Settings(lake_dir=tmp_path / "lake", datasets_dir=tmp_path / "datasets", database_url=pg_url,
                        gid_min=980000, gid_max=980100, tracer_url="")
    db = Database(pg_url)
    db.upgrade()
    db.upgrade()  # idempotent
    assert {"subjects", "studies", "series", "files", "datasets", "dataset_studies", "alembic_version"} <= set(
        inspect(db.engine).get_table_names())
    st = index_lake(settings, db, progress=False)
    assert st.files_hashed > 0
    again = index_lake(settings, db, progress=False)
    assert again.files_hashed == 0 and again.rows_written == 0
    with db.session() as s:
        n_files = s.scalar(select(func.count()).select_from(File))
        first = s.scalars(select(Study.id).order_by(Study.id)).first()
    assert n_files == st.files_seen
    i = builder.create_dataset(settings, db, actor="dora", name="pg", query={"modality": "MR"})
    j = builder.create_dataset(settings, db, actor="dora", name="pg2", study_ids=[first])
    assert builder.build(settings, db, i) == "draft" and builder.build(settings, db, j) == "draft"
    operations.transition(settings, db, i, DatasetState.released, "dora")
    operations.update_metadata(settings, db, i, {"tags": ["mr", "pg"]}, "dora")
    with pytest.raises(operations.Conflict):
        operations.update_metadata(settings, db, i, {"name": "x"}, "dora")
    with db.session() as s:
        d = s.get(Dataset, i)
        assert d.state == DatasetState.released and d.tags == ["mr", "pg"] and len(d.merkle_root) == 64
        assert s.get(Dataset, j).gid != d.gid
    assert operations.check(settings, db, i).ok
    db.dispose()
