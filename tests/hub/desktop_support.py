"""Support for the desktop tests and bench/desktop.py.

* ``RFB_CLIP_CHECK``: Python source, run *inside* a workspace (through its
  kernel), that connects to an X/VNC server's Unix socket as a plain RFB 3.8
  client, sets the X clipboard and primary selection with ``xclip``, and reports
  whether the text came back over the protocol (a ServerCutText message).
* ``study_image_found(png)``: whether a screenshot shows a medical image: a
  square block of at least 40x40 pixels that is grey (r = g = b), spread over
  many grey levels and mostly neither background nor text. A user interface
  (flat panels, anti-aliased text) does not pass; a CT slice does.
"""

from __future__ import annotations

import io

RFB_CLIP_CHECK = r'''
import os, socket, struct, subprocess, time, json
def rfb_clipboard_seen(sock_path, display, text, wait=3.0):
    s = socket.socket(socket.AF_UNIX); s.connect(sock_path); s.settimeout(wait)
    s.recv(12); s.sendall(b"RFB 003.008\n")
    n = s.recv(1)[0]; types = s.recv(n)
    assert 1 in types, types
    s.sendall(b"\x01"); assert struct.unpack(">I", s.recv(4))[0] == 0
    s.sendall(b"\x01")
    hdr = b""
    while len(hdr) < 24: hdr += s.recv(24 - len(hdr))
    nl = struct.unpack(">I", hdr[20:24])[0]; name = b""
    while len(name) < nl: name += s.recv(nl - len(name))
    env = dict(os.environ, DISPLAY=display)
    for sel in ("clipboard", "primary"):
        subprocess.Popen(["xclip", "-selection", sel], stdin=subprocess.PIPE, env=env).communicate(text.encode())
    data = b""; end = time.time() + wait
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return text.encode() in data
'''


def study_image_found(png: bytes, block: int = 40) -> bool:
    from PIL import Image
    import numpy as np

    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = im[..., 0], im[..., 1], im[..., 2]
    grey = (abs(r - g) <= 2) & (abs(g - b) <= 2)
    lum = (r + g + b) // 3
    h, w = lum.shape
    step = block // 2
    for y in range(0, h - block, step):
        for x in range(0, w - block, step):
            if grey[y : y + block, x : x + block].mean() < 0.98:
                continue
            win = lum[y : y + block, x : x + block]
            mid = ((win > 20) & (win < 235)).mean()
            if mid > 0.6 and len(np.unique(win)) >= 60 and win.std() > 12:
                return True
    return False


def make_desktop_stack(root, runtime_root: str):
    """A real hub + proxy with the sandbox spawner offering the desktop profile;
    alice (project lung) holds dataset A, whose study is a real CT slice
    (pydicom's own ``CT_small.dcm``). Returns (hub, service, layout, homes)."""
    from pathlib import Path

    import pydicom.data
    from sandbox_support import StandInDatasetService, make_lake_and_datasets
    from test_sandbox_hub import sandbox_hub_config

    from tests.fixtures.jupyterhub import start_hub

    root = Path(root)
    layout = make_lake_and_datasets(root)
    ct = Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes()
    for f in (layout.lake / layout.studies["ds-a"][0] / "series-1").glob("*.dcm"):
        f.write_bytes(ct)
    homes = root / "homes"
    homes.mkdir()
    service = StandInDatasetService(layout, grants={("alice", "lung"): ["ds-a"]})
    service.start()
    config = sandbox_hub_config(service, homes, runtime_root) + (
        'c.LocalSandboxSpawner.offered_profiles = ["notebook-cpu", "desktop"]\n'
    )
    hub = start_hub(root / "hub", users={"alice": ["researchers", "project-lung"]}, extra_config=config)
    return hub, service, layout, homes


def browser_login(browser, hub, user: str, password: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    pg.goto(hub.url + "/hub/login")
    pg.fill("#username_input", user)
    pg.fill("#password_input", password)
    with pg.expect_navigation():
        pg.click("#login_submit")
    return pg


#: true once the viewer's canvas holds a frame (noVNC's canvas is transparent until the first update)
FIRST_FRAME_JS = """() => {
  const c = document.querySelector('#screen canvas');
  if (!c || !window.insituConnected || c.width < 2) return false;
  const d = c.getContext('2d').getImageData(0, 0, Math.min(c.width, 64), Math.min(c.height, 64)).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
  return false;
}"""
