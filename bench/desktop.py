"""Start → first frame of a remote desktop in the browser, against a bare X/VNC server.

In the same run:

* baseline: ``Xtigervnc`` started by hand on a Unix socket, outside any sandbox,
  timed from its start to the first FramebufferUpdate read by a plain RFB 3.8
  client (the bare server's own start-up);
* platform: a real JupyterHub + proxy with the sandbox spawner; alice is logged
  in with a real browser; timed from pressing Start (``POST
  /hub/api/users/alice/server`` with the Desktop profile) until the viewer page's
  canvas in the browser holds its first frame (sandbox, notebook server,
  X server, window manager, the gateway and the websocket relay included).

    .venv/bin/python bench/desktop.py [--quick] [--runs N]

Needs root, bubblewrap, TigerVNC, chromium and ``.venv-workspace``. The last
line prints the medians, the difference and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "hub")]

from desktop_support import FIRST_FRAME_JS, browser_login, make_desktop_stack  # noqa: E402
from test_sandbox_hub import wait_ready, wait_stopped  # noqa: E402

from tests.fixtures.jupyterhub import DEMO_PASSWORD  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
OPTIONS = {"profile": "desktop", "project": "lung", "dataset_ids": ["ds-a"]}


def _recv(s: socket.socket, n: int) -> bytes:
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError("closed")
        b += chunk
    return b


def bare_first_frame(tmp: Path, display: int) -> float:
    """Seconds from starting Xtigervnc to the first FramebufferUpdate it sends."""
    sock = tmp / f"bare-{display}.sock"
    t0 = time.perf_counter()
    x = subprocess.Popen(["Xtigervnc", f":{display}", "-rfbport", "-1", "-rfbunixpath", str(sock),
                          "-SecurityTypes", "None", "-geometry", "1280x800", "-depth", "24"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not sock.exists():
            if x.poll() is not None:
                raise RuntimeError("Xtigervnc exited")
            time.sleep(0.005)
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        _recv(s, 12)
        s.sendall(b"RFB 003.008\n")
        n = _recv(s, 1)[0]
        _recv(s, n)
        s.sendall(b"\x01")
        _recv(s, 4)
        s.sendall(b"\x01")
        hdr = _recv(s, 24)
        _recv(s, struct.unpack(">I", hdr[20:24])[0])
        w, h = struct.unpack(">HH", hdr[:4])
        s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))  # FramebufferUpdateRequest, full
        while _recv(s, 1)[0] != 0:  # skip anything but a FramebufferUpdate
            pass
        t1 = time.perf_counter()
        s.close()
        return t1 - t0
    finally:
        x.terminate()
        x.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run of each (within a minute)")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    runs = 1 if a.quick else a.runs
    if os.geteuid() != 0 or not shutil.which("Xtigervnc") or not os.path.exists(CHROMIUM):
        print("needs root, TigerVNC and chromium")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="insitu-bench-desktop-"))
    os.chmod(tmp, 0o755)
    bare = [bare_first_frame(tmp, 90 + i) for i in range(max(3, runs))]
    runtime_root = f"/tmp/insitu-bd-{os.getpid()}"
    (tmp / "stack").mkdir()
    hub, service, layout, homes = make_desktop_stack(tmp / "stack", runtime_root)
    plat = []
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            pg = browser_login(browser, hub, "alice", DEMO_PASSWORD)
            for _ in range(runs):
                t0 = time.perf_counter()
                r = hub.api("POST", "/users/alice/server", json=OPTIONS)
                assert r.status_code in (201, 202), r.text
                wait_ready(hub, "alice")
                t_ready = time.perf_counter() - t0
                pg.goto(hub.url + "/user/alice/insitu/desktop")
                t_page = time.perf_counter() - t0
                pg.wait_for_function(FIRST_FRAME_JS, timeout=60_000, polling=20)
                plat.append(time.perf_counter() - t0)
                hub.api("DELETE", "/users/alice/server")
                wait_stopped(hub, "alice")
                print(f"platform start -> first frame: {plat[-1]:.2f} s (server ready {t_ready:.2f} s, "
                      f"page loaded {t_page:.2f} s)", flush=True)
            browser.close()
    finally:
        hub.stop()
        service.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    b, m = statistics.median(bare), statistics.median(plat)
    print(f"bare Xtigervnc start -> first frame: median {b:.3f} s over {len(bare)} runs")
    print(f"desktop: start->first frame in browser median {m:.2f} s (n={len(plat)}), bare Xtigervnc first frame "
          f"{b:.3f} s; difference {m - b:.2f} s (goal <= 2 s), ratio {m / b:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
