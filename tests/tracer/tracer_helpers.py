"""Helpers of the tracer tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tracer.batcher import Batcher, BatcherConfig
from tracer.chain import Chain
from tracer.db import make_engine, upgrade
from tracer.devchain import DEV_KEYS, free_port, start_anvil
from tracer.store import TraceStore

REPO = Path(__file__).resolve().parents[2]
PSEUDONYM_KEY = b"test-pseudonym-key"


@pytest.fixture(scope="session")
def anvil(tmp_path_factory):
    """An automining anvil shared by the tracer tests (each test deploys its own contract)."""
    chain = start_anvil(log_path=tmp_path_factory.mktemp("anvil") / "anvil.log")
    yield chain
    chain.stop()


@pytest.fixture()
def store(tmp_path) -> TraceStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'tracer.sqlite'}")
    upgrade(engine)
    yield TraceStore(engine)
    engine.dispose()


def make_batcher(store: TraceStore, url: str, *, key: str = DEV_KEYS[0], batch_max: int = 1000, **kw) -> Batcher:
    cfg = BatcherConfig(batch_max=batch_max, batch_wait=0, receipt_timeout=kw.pop("receipt_timeout", 30),
                        retry_initial=0.1, retry_max=0.5)
    return Batcher(store, Chain(url, key), cfg, **kw)


@dataclass
class TracerProcess:
    """``python -m tracer serve`` as a real subprocess."""

    workdir: Path
    env: dict[str, str]
    port: int
    prefix: str = "/services/tracer"
    platform_token: str = ""  # a platform service's hub token: /health and /metrics answer only to those
    process: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self, extra_env: dict[str, str] | None = None, wait_ready: bool = True) -> "TracerProcess":
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra_env or {})
        log = self.workdir / f"tracer-{len(self.logs)}.log"
        self.logs.append(log)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracer", "serve", "--port", str(self.port)], cwd=REPO, env=env,
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"tracer exited {self.process.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.url + "/health", headers=self._platform(), timeout=2)
                if r.status_code == 200 and (not wait_ready or r.json()["anchoring"] == "ready"):
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tracer did not start:\n{self.log()}")
            time.sleep(0.1)

    def _platform(self) -> dict[str, str]:
        return {"Authorization": f"token {self.platform_token}"}

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-5000:] for p in self.logs if p.exists())

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in httpx.get(self.url + "/metrics", headers=self._platform(), timeout=5).text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


def _tracer_factory(workdir: Path, hub_server, made: list):
    def factory(chain_url: str, *, db: Path | None = None, **env) -> TracerProcess:
        key = workdir / "tracer.key"
        key.write_text(DEV_KEYS[0] + "\n")
        base = {
            "TRACER_DATABASE_URL": f"sqlite:///{db or workdir / 'tracer.sqlite'}",
            "TRACER_CHAIN_URL": chain_url,
            "TRACER_KEY_FILE": str(key),
            "TRACER_HUB_API_URL": hub_server.api_url,
            "TRACER_BATCH_WAIT": "0.05",
            "TRACER_RETRY_INITIAL": "0.2",
            "TRACER_RETRY_MAX": "1",
            "TRACER_RECEIPT_TIMEOUT": "5",
        }
        base.update({k.upper(): str(v) for k, v in env.items()})
        tp = TracerProcess(workdir, base, free_port(), platform_token=hub_server.token_for("insitu-hub"))
        made.append(tp)
        return tp

    return factory


@pytest.fixture()
def tracer_factory(tmp_path, hub_server):
    """Build tracer processes bound to the test hub and a chain URL; stopped at the end."""
    made: list[TracerProcess] = []
    yield _tracer_factory(tmp_path, hub_server, made)
    for tp in made:
        tp.stop()


@pytest.fixture(scope="module")
def module_tracer(tmp_path_factory, hub_server, anvil):
    """One tracer process (on the shared anvil) for a whole test module."""
    made: list[TracerProcess] = []
    tp = _tracer_factory(tmp_path_factory.mktemp("tracer"), hub_server, made)(anvil.url).start()
    yield tp
    for t in made:
        t.stop()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def new_traces(n: int, *, caller: str = "dataset-service", datasets: int = 5, action: str = "USE_DATASETS",
               prefix: str = ""):
    from insitu.trace_client import make_trace, pseudonym

    return [
        make_trace(action, caller=caller, user=pseudonym(f"{prefix}user{i % 3}", PSEUDONYM_KEY),
                   dataset_ids=[f"{prefix}ds-{i % datasets}"], digests={f"{prefix}ds-{i % datasets}": f"{i:064x}"},
                   details={"session_id": f"s-{i}"})
        for i in range(n)
    ]


@pytest.fixture()
def traces():
    """``traces(n, ...)``: n valid traces (pseudonymous users, a few datasets)."""
    return new_traces
