"""Dataset lifecycle tracing with a real tracer: a crash after the tracer accepted CREATE_DATASET is finished
by the recovery, which resends the very same trace (same id, time and content) and is stored once."""
from __future__ import annotations

import httpx
import pytest

from dataset_service import builder, traces
from dataset_service.models import Dataset, DatasetEvent, DatasetState
from fixtures.governance_stack import Tracer
from fixtures.jupyterhub import free_port
from sqlalchemy import select


@pytest.fixture(scope="module")
def tracer(hub_server, tmp_path_factory):
    t = Tracer(port=free_port(), workdir=tmp_path_factory.mktemp("tracer"), hub_api_url=hub_server.api_url)
    t.start()
    yield t
    t.stop()


@pytest.fixture
def traced(env, tracer, hub_server):
    settings, db = env
    return settings.model_copy(update={"tracer_url": tracer.url,
                                       "tracer_token": hub_server.token_for("dataset-service")}), db


def stored_traces(tracer, hub_server, dataset_id: str) -> list[dict]:
    r = httpx.get(tracer.url + "/traces", params={"dataset": dataset_id, "action": "CREATE_DATASET"},
                  headers={"Authorization": f"token {hub_server.token_for('audrey')}"}, timeout=30)
    r.raise_for_status()
    return r.json()["traces"]


def test_crash_after_the_tracer_accepted_is_finished_by_recovery(traced, tracer, hub_server, monkeypatch):
    settings, db = traced
    i = builder.create_dataset(settings, db, actor="dora", name="traced", all_studies=True)
    real, answers = traces.record, []

    def accepted_then_killed(*args, **kwargs):
        answers.append(real(*args, **kwargs))
        if len(answers) == 1:  # the tracer stored it; the process dies before the database says so
            raise RuntimeError("killed after the tracer accepted CREATE_DATASET")
        return answers[-1]

    monkeypatch.setattr(builder.traces, "record", accepted_then_killed)
    assert builder.build(settings, db, i) == "building"
    assert answers[0]["status"] == "accepted"
    with db.session() as s:
        assert s.get(Dataset, i).state == DatasetState.building

    runner = builder.BuildRunner(settings, db)
    assert runner.recover() == [i]
    runner.wait(i, timeout=120)
    runner.shutdown()
    with db.session() as s:
        d = s.get(Dataset, i)
        assert d.state == DatasetState.draft, d.error
        journal = list(s.scalars(select(DatasetEvent.detail).where(DatasetEvent.dataset_id == i,
                                                                   DatasetEvent.action == "trace")))
    assert answers[1]["status"] == "duplicate" and answers[1]["id"] == answers[0]["id"]
    stored = stored_traces(tracer, hub_server, i)
    assert len(stored) == 1 and len(journal) == 1
    assert stored[0]["trace"] == journal[0]  # the tracer holds exactly the journalled trace


def test_trace_made_while_the_tracer_was_down_is_the_one_sent_later(traced, tracer, hub_server, monkeypatch):
    settings, db = traced
    i = builder.create_dataset(settings, db, actor="dora", name="traced-later", all_studies=True)
    down = settings.model_copy(update={"tracer_url": f"http://127.0.0.1:{free_port()}/services/tracer"})
    assert builder.build(down, db, i) == "building"  # tree complete, trace not delivered
    with db.session() as s:
        first = [e for e in s.scalars(select(DatasetEvent.detail).where(DatasetEvent.dataset_id == i,
                                                                          DatasetEvent.action == "trace"))]
    assert len(first) == 1
    assert builder.build(settings, db, i) == "draft"
    stored = stored_traces(tracer, hub_server, i)
    assert [t["trace"] for t in stored] == first
