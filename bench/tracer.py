"""Tracer benchmark: throughput from POST to anchored-with-proof, and auditor query time.

    .venv/bin/python bench/tracer.py            # full: 20,000 batched, 500 per-trace, 1,000,000 stored
    .venv/bin/python bench/tracer.py --quick    # within a minute: fewer traces, 100,000 stored

What runs: a real anvil (automine, zero gas price), the real tracer service
(`tracer.app.create_app` under uvicorn, SQLite) in a subprocess, and an async
HTTP load generator posting traces concurrently. The only stand-in is the
identity plane: instead of a JupyterHub, the tracer resolves two fixed bench
tokens (a `dataset-service` service and an `auditors` user) — everything after
the token check is the production path.

1. Batched mode (batch up to 5,000 traces per anchor) and per-trace mode (one
   transaction per trace, the baseline) in the same run: traces/s from the
   first POST until every trace is anchored with its proof (pending = 0).
2. Query: N traces over 1,000 datasets are stored and anchored, then the
   median time of `GET /traces?dataset=<one>&limit=100` (HTTP, with proofs).
The last line prints the figures and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

SERVICE_TOKEN = "bench-service-token"
AUDITOR_TOKEN = "bench-auditor-token"
KEY = b"bench-pseudonym-key"
PLATFORM = {"Authorization": f"token {SERVICE_TOKEN}"}  # /health answers platform services only


# --- the server side (run as a subprocess: bench/tracer.py --serve PORT) -------------
def serve(port: int) -> None:
    import uvicorn
    if os.environ.get("SWITCH"):
        sys.setswitchinterval(float(os.environ["SWITCH"]))

    from insitu.identity import HubAuthConfig, Identity, ServiceAuth
    from tracer.app import create_app
    from tracer.settings import TracerSettings

    class BenchAuth(ServiceAuth):
        """Stand-in for the hub: two fixed tokens, both with the tracer's access scope."""

        async def resolve(self, token):
            scopes = frozenset({"access:services!service=tracer"})
            if token == SERVICE_TOKEN:
                return Identity("dataset-service", "service", scopes=scopes)
            if token == AUDITOR_TOKEN:
                return Identity("audrey", "user", frozenset({"auditors"}), scopes=scopes)
            return None

    app = create_app(TracerSettings())
    app.state.hub_auth = BenchAuth(HubAuthConfig(api_url="http://127.0.0.1:1/unused", service_name="tracer"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Server:
    def __init__(self, workdir: Path, chain_url: str, key_file: Path, name: str, **env):
        from tracer.devchain import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/services/tracer"
        e = dict(os.environ)
        e.update({
            "TRACER_DATABASE_URL": f"sqlite:///{workdir / (name + '.sqlite')}",
            "TRACER_CHAIN_URL": chain_url,
            "TRACER_KEY_FILE": str(key_file),
            "TRACER_BATCH_WAIT": "0.2",
        })
        e.update({k: str(v) for k, v in env.items()})
        self.log = open(workdir / f"{name}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)], env=e, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(self.url + "/health", headers=PLATFORM, timeout=2)
                if r.status_code == 200 and r.json()["anchoring"] in ("ready", None):
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tracer did not start; see {workdir / (name + '.log')}")
            time.sleep(0.1)

    def pending(self) -> int:
        return httpx.get(self.url + "/health", headers=PLATFORM, timeout=10).json()["pending"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_bodies(n: int, datasets: int = 1000) -> list[bytes]:
    from insitu.trace_client import make_trace, pseudonym

    users = [pseudonym(f"user{i}", KEY) for i in range(200)]
    out = []
    for i in range(n):
        d = f"ds-{i % datasets:04d}"
        t = make_trace("USE_DATASETS", caller="dataset-service", user=users[i % len(users)], dataset_ids=[d],
                       digests={d: f"{i:064x}"}, details={"session_id": f"s-{i}", "profile": "cpu"})
        out.append(t.canonical_bytes())
    return out


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> None:
    """Post every body with ``concurrency`` keep-alive connections (aiohttp: a light load generator)."""
    import aiohttp

    headers = {"Authorization": f"token {SERVICE_TOKEN}", "Content-Type": "application/json"}
    it = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def worker():
            for body in it:
                async with session.post(url + "/traces", data=body, headers=headers) as r:
                    if r.status != 202:
                        raise RuntimeError(f"POST answered {r.status}: {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def throughput(server: Server, bodies: list[bytes], concurrency: int) -> tuple[float, float]:
    """(traces/s POST→anchored, traces/s of the POSTs alone)."""
    t0 = time.perf_counter()
    asyncio.run(post_all(server.url, bodies, concurrency))
    t_post = time.perf_counter() - t0
    while server.pending() > 0:
        time.sleep(0.02)
    total = time.perf_counter() - t0
    return len(bodies) / total, len(bodies) / t_post


def fill(db_url: str, n: int, chain_url: str, key: str) -> float:
    """Store n traces directly through the intake code path and anchor them; returns seconds."""
    from tracer.batcher import Batcher, BatcherConfig
    from tracer.chain import Chain
    from insitu.trace_client import make_trace, pseudonym
    from tracer.db import make_engine, upgrade
    from tracer.store import TraceStore

    t0 = time.perf_counter()
    engine = make_engine(db_url, sqlite_synchronous="NORMAL")
    upgrade(engine)
    store = TraceStore(engine)
    users = [pseudonym(f"user{i}", KEY) for i in range(500)]
    chunk = 20_000
    for start in range(0, n, chunk):
        ts = []
        for i in range(start, min(n, start + chunk)):
            d = f"ds-{i % 1000:04d}"
            ts.append(make_trace("USE_DATASETS", caller="dataset-service", user=users[i % 500], dataset_ids=[d],
                                 digests={d: f"{i:064x}"}, details={"session_id": f"s-{i}"}))
        store.add_many(ts)
        print(f"  stored {min(n, start + chunk):,}/{n:,}", end="\r", flush=True)
    Batcher(store, Chain(chain_url, key), BatcherConfig(batch_max=5000, batch_wait=0)).drain(timeout=3600)
    engine.dispose()
    print()
    return time.perf_counter() - t0


def query_times(server: Server, rounds: int) -> list[float]:
    headers = {"Authorization": f"token {AUDITOR_TOKEN}"}
    times = []
    rnd = random.Random(1)
    with httpx.Client(timeout=30) as c:
        for i in range(rounds + 5):
            d = f"ds-{rnd.randrange(1000):04d}"
            t0 = time.perf_counter()
            r = c.get(server.url + "/traces", params={"dataset": d, "limit": 100}, headers=headers)
            dt = time.perf_counter() - t0
            body = r.json()
            if r.status_code != 200 or not body["traces"] or body["traces"][0]["proof"] is None:
                raise RuntimeError(f"query failed: {r.status_code} {r.text[:200]}")
            if i >= 5:  # warm-up excluded
                times.append(dt)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer traces, finishes within a minute")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batched", type=int)
    p.add_argument("--per-trace", type=int)
    p.add_argument("--stored", type=int)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    from tracer.devchain import DEV_KEYS, start_anvil

    n_batched = args.batched or (3000 if args.quick else 20_000)
    n_single = args.per_trace or (150 if args.quick else 500)
    n_stored = args.stored or (100_000 if args.quick else 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="tracer-bench-"))
    key_file = work / "tracer.key"
    key_file.write_text(DEV_KEYS[0])
    chain = start_anvil(log_path=work / "anvil.log")
    servers: list[Server] = []
    try:
        print(f"tracer benchmark{' (--quick: reduced sizes)' if args.quick else ''}; anvil automine, SQLite, "
              f"{args.concurrency} concurrent posters; work dir {work}")
        batched_bodies = make_bodies(n_batched)
        single_bodies = make_bodies(n_single)

        s = Server(work, chain.url, key_file, "batched", TRACER_BATCH_MAX=5000)
        servers.append(s)
        batched, batched_post = throughput(s, batched_bodies, args.concurrency)
        s.stop()
        print(f"batched:   {n_batched:,} traces, {batched:,.0f} traces/s POST→anchored with proof "
              f"(POSTs alone {batched_post:,.0f}/s)")

        s = Server(work, chain.url, key_file, "single", TRACER_BATCH_MAX=1)
        servers.append(s)
        single, single_post = throughput(s, single_bodies, args.concurrency)
        s.stop()
        print(f"per-trace: {n_single:,} traces, {single:,.1f} traces/s POST→anchored with proof "
              f"(POSTs alone {single_post:,.0f}/s)")

        db = work / "query.sqlite"
        secs = fill(f"sqlite:///{db}", n_stored, chain.url, DEV_KEYS[0])
        print(f"stored and anchored {n_stored:,} traces over 1,000 datasets in {secs:.0f}s")
        s = Server(work, chain.url, key_file, "query", TRACER_DATABASE_URL=f"sqlite:///{db}")
        servers.append(s)
        times = query_times(s, 50 if args.quick else 200)
        s.stop()
        med = statistics.median(times) * 1000
        p95 = sorted(times)[int(len(times) * 0.95) - 1] * 1000
        print(f"query one dataset's traces (100 per page, with proofs) over {n_stored:,} stored: "
              f"median {med:.1f} ms, p95 {p95:.1f} ms")
        ratio = batched / single if single else float("inf")
        print(f"RESULT{' (quick)' if args.quick else ''}: batched {batched:,.0f} traces/s vs per-trace "
              f"{single:,.1f} traces/s = {ratio:,.0f}x (goals >=1,000/s, >=100x); query median {med:.1f} ms "
              f"over {n_stored:,} traces (goal <50 ms)")
        return 0
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
        chain.stop()
        if not os.environ.get("TRACER_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
