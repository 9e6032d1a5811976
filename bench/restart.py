"""A workspace's second start and a person's way from the hub to a usable JupyterLab.

Two real JupyterHubs (with configurable-http-proxy) run one after the other in the
same run, on the same lake, with the hubs and workspaces of ``bench/spawn.py``:

* baseline: JupyterHub's SimpleLocalProcessSpawner running the same
  ``.venv-workspace`` jupyterhub-singleuser as a plain local process;
* sandbox: ``hub.sandbox.LocalSandboxSpawner`` (stand-in sessions API, bubblewrap).

For each hub:

* first start and restart: ``POST /hub/api/users/NAME/server`` to the first
  ``200`` of ``api/status`` through the proxy, on a fresh home, then again after
  a kernel has run (``~/.ipython`` exists: what used to break every second start)
  and the server was stopped. Goal: a restart no slower than a first start.
* login to usable JupyterLab, in headless Chromium (Playwright): the login form,
  the home's Start button, the options form where there is one (project and
  dataset ticked, then Start), until JupyterLab's file browser lists the home.
  Two figures: from pressing Start (the last click) and from opening the login
  page. Goal: usable JupyterLab within 5 s of pressing Start.

Needs root, bubblewrap, ``.venv-workspace`` and /usr/bin/chromium.

    .venv/bin/python bench/restart.py [--quick] [--runs N]

The last line prints the medians and the ratios (restart / first start; sandbox / plain).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "hub"), str(REPO / "tests" / "journeys"), str(REPO / "bench")]

from journey_support import wait_stopped  # noqa: E402
from sandbox_support import kernel_exec  # noqa: E402
from spawn import OPTIONS, WS, baseline_config, sandbox_config, stand_in_world  # noqa: E402
from tests.fixtures.jupyterhub import DEMO_PASSWORD, start_hub  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def wait_usable(hub, user: str, token: str, t0: float, limit: float = 120) -> float:
    url = hub.url + f"/user/{user}/api/status"
    while True:
        try:
            if httpx.get(url, headers={"Authorization": f"token {token}"}, timeout=10).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > limit:
            raise RuntimeError(f"server never became usable\n{hub.log()[-3000:]}")
        time.sleep(0.02)


def stop(hub, user: str) -> None:
    hub.api("DELETE", f"/users/{user}/server")
    wait_stopped(hub, user)


def start_timed(hub, user: str, options: dict | None) -> float:
    token = hub.token_for(user)
    t0 = time.perf_counter()
    r = hub.api("POST", f"/users/{user}/server", json=options or {})
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn failed: {r.status_code} {r.text}\n{hub.log()[-3000:]}")
    return wait_usable(hub, user, token, t0)


def first_and_restart(hub, user: str, options: dict | None) -> tuple[float, float]:
    """(first start on a fresh home, restart after a kernel ran and the server stopped)."""
    first = start_timed(hub, user, options)
    # a kernel runs (creates ~/.ipython); in a thread: Playwright's sync API holds this thread's event loop
    t = threading.Thread(target=kernel_exec, args=(hub.url + f"/user/{user}/", hub.token_for(user),
                                                   "import IPython; print(IPython.paths.get_ipython_dir())"))
    t.start()
    t.join(120)
    stop(hub, user)
    again = start_timed(hub, user, options)  # left running: the hub stops its servers when it stops
    return first, again


def login_to_lab(browser, hub, user: str, options: dict | None) -> tuple[float, float]:
    """(seconds from pressing Start, seconds from opening the login page) until the file browser lists."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    try:
        t_start = None
        t_login = time.perf_counter()
        page.goto(hub.url + "/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", DEMO_PASSWORD)
        page.click("#login_submit")
        page.wait_for_url(re.compile(r".*/hub/home.*"))
        start = page.locator("#start")
        if options is None:
            t_start = time.perf_counter()
        start.click()
        if options is not None:  # the platform's options form: project and dataset, then Start
            page.wait_for_url(re.compile(r".*/hub/spawn.*"))
            page.locator(f"input[name=project][value={options['project']}]").check()
            for d in options["dataset_ids"]:
                page.locator(f'input[name=dataset][value="{d}"]').check()
            t_start = time.perf_counter()
            page.locator("form input[type=submit], form button[type=submit]").first.click()
        page.wait_for_url(re.compile(rf".*/user/{user}/lab.*"), timeout=180_000)
        page.wait_for_selector(".jp-DirListing-content", timeout=120_000)
        done = time.perf_counter()
        return done - t_start, done - t_login
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one of each, no warm-up (about a minute)")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bwrap") or not (WS / "bin" / "jupyterhub-singleuser").exists() \
            or not os.path.exists(CHROMIUM):
        sys.exit("bench/restart.py needs root, bubblewrap, .venv-workspace and chromium (make setup)")
    from playwright.sync_api import sync_playwright

    runs = args.runs or (1 if args.quick else 3)
    # each run on a fresh home: users of its own (u: start and restart, w: login to JupyterLab)
    users = {f"{k}{i}": ["researchers", "project-lung"] for i in range(runs + 1) for k in "uw"}
    root, service = stand_in_world("insitu-bench-restart-", users)
    res: dict[str, dict[str, list[float]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            for name, config, options in (("plain", baseline_config(root), None),
                                          ("sandbox", sandbox_config(service, root), OPTIONS)):
                # after login, the hub's home (as the platform's hub does) rather than straight to a spawn
                config += '\nc.JupyterHub.default_url = "/hub/home"\n'
                hub = start_hub(root / f"hub-{name}", users=users, extra_config=config)
                r = res[name] = {"first": [], "restart": [], "from_start": [], "from_login": []}
                try:
                    if not args.quick:  # warm-up (imports, page cache) with a user of its own
                        first_and_restart(hub, "u0", options)
                    for i in range(1, runs + 1):  # each run on a fresh home: a user of its own
                        first, again = first_and_restart(hub, f"u{i}", options)
                        r["first"].append(first)
                        r["restart"].append(again)
                        from_start, from_login = login_to_lab(browser, hub, f"w{i}", options)
                        r["from_start"].append(from_start)
                        r["from_login"].append(from_login)
                finally:
                    hub.stop()
                print(f"{name:8s} " + "  ".join(f"{k} " + ", ".join(f"{t:.2f}s" for t in v) for k, v in r.items()),
                      flush=True)
            browser.close()
    finally:
        service.stop()
        shutil.rmtree(f"/tmp/insitu-bench-{os.getpid()}", ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    m = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in res.items()}
    s, b = m["sandbox"], m["plain"]
    print(
        f"medians of {runs}: sandbox first start {s['first']:.2f}s, restart {s['restart']:.2f}s "
        f"(ratio {s['restart'] / s['first']:.2f}x, goal <= 1); plain first {b['first']:.2f}s, restart "
        f"{b['restart']:.2f}s ({b['restart'] / b['first']:.2f}x); Start -> usable JupyterLab: sandbox "
        f"{s['from_start']:.2f}s, plain {b['from_start']:.2f}s (ratio {s['from_start'] / b['from_start']:.2f}x, goal "
        f"sandbox <= 5 s); login page -> JupyterLab: sandbox {s['from_login']:.2f}s, plain {b['from_login']:.2f}s "
        f"(ratio {s['from_login'] / b['from_login']:.2f}x)"
    )


if __name__ == "__main__":
    main()
