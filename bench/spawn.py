"""Time from "start server" to a usable notebook server: sandbox vs plain process.

Two real JupyterHubs (with configurable-http-proxy) run one after the other in
the same run, on the same lake:

* baseline: JupyterHub's SimpleLocalProcessSpawner running the same
  ``.venv-workspace`` jupyterhub-singleuser, with the same lock-down config
  (read-only, as a ``JUPYTER_CONFIG_PATH`` entry; its own writable config folder
  is in the run's temporary folder, never in the checkout), as a plain local
  process on a TCP port;
* sandbox: ``hub.sandbox.LocalSandboxSpawner`` (dataset session with the
  stand-in sessions API, bubblewrap + setpriv, Unix sockets).

A spawn is timed from ``POST /hub/api/users/NAME/server`` to the first ``200``
of ``GET /user/NAME/api/status`` through the proxy with the user's token.
Needs root, bubblewrap and ``.venv-workspace``.

    .venv/bin/python bench/spawn.py [--quick] [--runs N]

The last line prints the medians, the overhead and the ratio.
"""

from __future__ import annotations

import argparse
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

from sandbox_support import StandInDatasetService, make_lake_and_datasets  # noqa: E402
from tests.fixtures.jupyterhub import start_hub  # noqa: E402

WS = REPO / ".venv-workspace"
ETC = REPO / "hub" / "workspace" / "etc" / "jupyter"
OPTIONS = {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]}


def baseline_config(root: Path) -> str:
    pkg = root / "python"
    pkg.mkdir(exist_ok=True)
    if not (pkg / "insitu_workspace").exists():
        os.symlink(REPO / "hub" / "workspace", pkg / "insitu_workspace")
    return f"""
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = {str(root / 'plain-homes' / '{username}')!r}
c.Spawner.cmd = [{str(WS / 'bin' / 'jupyterhub-singleuser')!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {{"JUPYTER_CONFIG_DIR": {str(root / 'plain-config')!r}, "JUPYTER_CONFIG_PATH": {str(ETC)!r},
                         "PYTHONPATH": {str(pkg)!r}, "JUPYTERHUB_DISABLE_USER_CONFIG": "1"}}
c.Spawner.http_timeout = 90
c.Spawner.start_timeout = 90
"""


def sandbox_config(service: StandInDatasetService, root: Path) -> str:
    return f"""
c.JupyterHub.spawner_class = "hub.sandbox.LocalSandboxSpawner"
c.LocalSandboxSpawner.dataset_service_url = {service.url!r}
c.LocalSandboxSpawner.dataset_service_token = {service.token!r}
c.LocalSandboxSpawner.home_root = {str(root / 'homes')!r}
c.LocalSandboxSpawner.runtime_root = {f'/tmp/insitu-bench-{os.getpid()}'!r}
c.LocalSandboxSpawner.http_timeout = 90
c.LocalSandboxSpawner.start_timeout = 90
"""


def stand_in_world(prefix: str, users) -> tuple[Path, StandInDatasetService]:
    """A temporary folder with the lake, dataset ``ds-a`` and a ``homes`` folder, and the stand-in
    sessions API granting ``ds-a`` to ``users`` in project lung (started)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    layout = make_lake_and_datasets(root)
    (root / "homes").mkdir()
    return root, StandInDatasetService(layout, grants={(u, "lung"): ["ds-a"] for u in users}).start()


def time_spawns(hub, user: str, runs: int, options: dict | None) -> list[float]:
    token = hub.token_for(user)
    url = hub.url + f"/user/{user}/api/status"
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = hub.api("POST", f"/users/{user}/server", json=options or {})
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn failed: {r.status_code} {r.text}\n{hub.log()[-3000:]}")
        while True:
            try:
                s = httpx.get(url, headers={"Authorization": f"token {token}"}, timeout=10)
                if s.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"server never became usable\n{hub.log()[-3000:]}")
            time.sleep(0.02)
        out.append(time.perf_counter() - t0)
        hub.api("DELETE", f"/users/{user}/server")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = hub.api("GET", f"/users/{user}").json()
            if not m.get("servers") and not m.get("pending"):
                break
            time.sleep(0.1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one timed spawn each, no warm-up (about a minute)")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bwrap") or not (WS / "bin" / "jupyterhub-singleuser").exists():
        sys.exit("bench/spawn.py needs root, bubblewrap and .venv-workspace (make setup)")
    runs = args.runs or (1 if args.quick else 5)
    users = {"alice": ["researchers", "project-lung"]}
    root, service = stand_in_world("insitu-bench-spawn-", users)
    results = {}
    try:
        for name, config, options in (
            ("plain", baseline_config(root), None),
            ("sandbox", sandbox_config(service, root), OPTIONS),
        ):
            hub = start_hub(root / f"hub-{name}", users=users, extra_config=config)
            try:
                if not args.quick:
                    time_spawns(hub, "alice", 1, options)  # warm-up (imports, page cache)
                results[name] = time_spawns(hub, "alice", runs, options)
            finally:
                hub.stop()
            print(f"{name:8s} spawn→usable: " + ", ".join(f"{t:.2f}s" for t in results[name]), flush=True)
    finally:
        service.stop()
        shutil.rmtree(f"/tmp/insitu-bench-{os.getpid()}", ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    plain, sandbox = statistics.median(results["plain"]), statistics.median(results["sandbox"])
    print(
        f"spawn to usable notebook (median of {runs}): plain {plain:.2f}s, sandbox {sandbox:.2f}s, "
        f"overhead {sandbox - plain:+.2f}s, ratio {sandbox / plain:.2f}x (goal: overhead < 1 s)"
    )


if __name__ == "__main__":
    main()
