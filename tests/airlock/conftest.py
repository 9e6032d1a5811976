"""Fixtures of the export airlock tests: the real governance stack (JupyterHub + tracer +
dataset service; ``governance_stack`` from tests/fixtures/governance_stack.py) with the
airlock's store and homes in a temporary folder."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataset_service.airlock.service import Airlock
from dataset_service.airlock.settings import AirlockSettings
from dataset_service.airlock.store import FrozenStore
from dataset_service.airlock.tracing import ExportTracing

PSEUDONYM_KEY = "test-pseudonym-key"
# the airlock's own researchers, so that the grants and sessions these tests create do not
# change what the other tests sharing the stack see for the demo users
USERS = {"ayla": ["researchers", "project-exports-a"], "bram": ["researchers", "project-exports-b"],
         "cleo": ["researchers", "project-exports-a", "project-exports-b"]}


@dataclass
class AirlockStack:
    st: object  # GovernanceStack
    settings: AirlockSettings
    root: Path

    @property
    def airlock(self) -> Airlock:
        return self.st.app.state.airlock

    def api(self, name):
        return self.st.api(name)

    def home(self, user: str, project: str | None = None) -> Path:
        """The user's workspace home of ``project`` (default: the user's first project), one per user and project."""
        project = project or next((g[len("project-"):] for g in USERS.get(user, []) if g.startswith("project-")),
                                  "exports-a")
        h = self.settings.homes_root / user / project
        h.mkdir(parents=True, exist_ok=True)
        return h

    def write(self, user: str, name: str, data: bytes, project: str | None = None) -> Path:
        p = self.home(user, project) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def traces(self, **filters) -> list[dict]:
        return self.st.tracer.traces(self.st.token("audrey"), **filters)

    def open_session(self, user: str = "ayla", project: str = "exports-a") -> tuple[str, str]:
        """A granted dataset and an open workspace session for ``user``: (session_id, dataset_id)."""
        st = self.st
        ds = st.add_dataset("Lung CT " + secrets.token_hex(2))
        st.grant(ds, user, project)
        with st.api("insitu-hub") as c:
            r = c.post("/api/sessions", json={"user": user, "project": project, "dataset_ids": [ds], "profile": "cpu"})
            assert r.status_code == 201, r.text
            return r.json()["session_id"], ds


@pytest.fixture(scope="session")
def airlock_stack(governance_stack, tmp_path_factory) -> AirlockStack:
    root = tmp_path_factory.mktemp("airlock")
    settings = AirlockSettings(store_dir=root / "store", homes_root=root / "homes", quorum=1, large_file=1_000_000,
                               max_file_size=5_000_000, max_request_size=8_000_000)
    st = governance_stack
    for name, groups in USERS.items():
        st.hub.add_user(name, groups)
    st.app.state.airlock_settings = settings
    st.app.state.airlock = Airlock(settings, FrozenStore(settings.store_dir),
                                   ExportTracing(st.tracer.url, st.token("dataset-service"), PSEUDONYM_KEY))
    return AirlockStack(st=st, settings=settings, root=root)
