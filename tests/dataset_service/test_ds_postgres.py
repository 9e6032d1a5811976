"""The same storage paths against a throwaway PostgreSQL 15 cluster (Debian's binaries)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from dataset_service import builder, operations
from dataset_service.db import Database
from dataset_service.indexer import index_lake
from dataset_service.models import Dataset, DatasetState, File, Study
from dataset_service.settings import Settings
from fixtures.jupyterhub import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = pytest.mark.postgres


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + list(cmd), capture_output=True, text=True)


@pytest.fixture(scope="module")
def pg_url():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (scripts/apt-packages.txt)")
    d = Path(tempfile.mkdtemp(prefix="insitu-pg-"))
    os.chmod(d, 0o755)
    data, sock = d / "data", d / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    r = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    assert r.returncode == 0, r.stderr
    port = free_port()
    r = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(d / "log"), "-w", "-t", "60", "-o",
                     f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    assert r.returncode == 0, r.stderr + (d / "log").read_text()
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(d, ignore_errors=True)


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
