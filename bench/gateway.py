"""What the workspace gateway costs per request.

One real JupyterHub (with configurable-http-proxy) and one real sandboxed
workspace (``hub.sandbox.LocalSandboxSpawner``, stand-in sessions API). The
same requests, with the same user token, are timed three ways:

* baseline: straight to the notebook server's Unix socket (``srv/jupyter.sock``,
  what the proxy used to reach);
* gateway: to the gateway's socket (``gw/gateway.sock``): authentication,
  peer check, forwarding and the inspection of the answer;
* proxy: the whole way a browser goes (configurable-http-proxy → gateway → server).

Requests: ``GET api/status`` and ``GET api/contents/<1 MiB text file>`` (the
inspection decodes and reads contents answers). Needs root, bubblewrap and
``.venv-workspace``.

    .venv/bin/python bench/gateway.py [--quick] [--runs N]

The last line prints the medians, the overhead of the gateway and the ratio.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "hub")]

from sandbox_support import StandInDatasetService, kernel_exec, make_lake_and_datasets  # noqa: E402
from tests.fixtures.jupyterhub import start_hub  # noqa: E402


def timed(client: httpx.Client, url: str, token: str, runs: int) -> list[float]:
    out = []
    h = {"Authorization": f"token {token}"}
    for _ in range(runs):
        t0 = time.perf_counter()
        r = client.get(url, headers=h)
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (well under a minute)")
    ap.add_argument("--runs", type=int, default=0)
    args = ap.parse_args()
    runs = args.runs or (40 if args.quick else 200)
    root = Path(tempfile.mkdtemp(prefix="insitu-bench-gw-"))
    runtime_root = f"/tmp/insitu-bgw-{os.getpid()}"
    layout = make_lake_and_datasets(root)
    (root / "homes").mkdir()
    service = StandInDatasetService(layout, grants={("alice", "lung"): ["ds-a"]}).start()
    config = f"""
c.JupyterHub.spawner_class = "hub.sandbox.LocalSandboxSpawner"
c.LocalSandboxSpawner.dataset_service_url = {service.url!r}
c.LocalSandboxSpawner.dataset_service_token = {service.token!r}
c.LocalSandboxSpawner.home_root = {str(root / "homes")!r}
c.LocalSandboxSpawner.runtime_root = {runtime_root!r}
c.LocalSandboxSpawner.http_timeout = 90
c.LocalSandboxSpawner.start_timeout = 90
"""
    hub = start_hub(root / "hub", users={"alice": ["researchers", "project-lung"]}, extra_config=config)
    results: dict[str, list[float]] = {}
    try:
        r = hub.api("POST", "/users/alice/server",
                    json={"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]})
        assert r.status_code in (201, 202), r.text
        deadline = time.monotonic() + 120
        while not (hub.api("GET", "/users/alice").json().get("servers", {}).get("", {}).get("ready")):
            assert time.monotonic() < deadline, hub.log()[-3000:]
            time.sleep(0.3)
        token = hub.token_for("alice")
        base = "/user/alice/"
        kernel_exec(hub.url + base, token, "open('big.txt', 'w').write('0123456789abcdef\\n' * 65536)")
        (rd,) = glob.glob(f"{runtime_root}/*-*/")
        paths = {"baseline": f"{rd}srv/jupyter.sock", "gateway": f"{rd}gw/gateway.sock"}
        clients = {k: httpx.Client(transport=httpx.HTTPTransport(uds=p), base_url="http://workspace", timeout=60)
                   for k, p in paths.items()}
        clients["proxy"] = httpx.Client(base_url=hub.url, timeout=60)
        for what in ("api/status", "api/contents/big.txt?content=1"):
            for name, client in clients.items():
                timed(client, base + what, token, 3)  # warm caches (token lookups)
                results[f"{name} {what}"] = []
            for _ in range(runs):  # interleaved: the three ways see the same machine load
                for name, client in clients.items():
                    results[f"{name} {what}"] += timed(client, base + what, token, 1)
            for name in clients:
                med = statistics.median(results[f"{name} {what}"]) * 1000
                print(f"{name:8s} {what:32s} median {med:7.2f} ms", flush=True)
        for c in clients.values():
            c.close()
    finally:
        hub.api("DELETE", "/users/alice/server")
        time.sleep(2)
        hub.stop()
        service.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    m = {k: statistics.median(v) * 1000 for k, v in results.items()}
    s_base, s_gw = m["baseline api/status"], m["gateway api/status"]
    c_base, c_gw = m["baseline api/contents/big.txt?content=1"], m["gateway api/contents/big.txt?content=1"]
    print(f"gateway per request (median of {runs}): api/status {s_base:.2f} -> {s_gw:.2f} ms "
          f"(+{s_gw - s_base:.2f} ms, {s_gw / s_base:.2f}x); 1 MiB contents {c_base:.2f} -> {c_gw:.2f} ms "
          f"(+{c_gw - c_base:.2f} ms, {c_gw / c_base:.2f}x); through the proxy {m['proxy api/status']:.2f} ms")


if __name__ == "__main__":
    main()
