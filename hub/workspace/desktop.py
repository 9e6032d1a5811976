"""The remote desktop of a workspace: a graphical session in the same sandbox.

A desktop workspace is a notebook workspace whose server also runs a TigerVNC
X server (``Xtigervnc``) as the researcher's uid, inside the sandbox, listening
on a Unix socket only (no TCP port). jupyter-server-proxy relays the browser's
websocket at ``{base}desktop-vnc/`` to that socket as raw bytes (RFB), and this
extension serves the viewer page at ``{base}insitu/desktop`` with Debian's
noVNC client code. Both sit behind the notebook server's own authentication and
whatever authenticates requests in front of it; nothing else listens.

Copy-out is closed at the server: ``-SendCutText=0 -SendPrimary=0`` make the
X server never send its clipboard or selection to any viewer (the RFB
ServerCutText message is never emitted), so text copied inside the desktop does
not reach the browser. Paste-in stays allowed (``-AcceptCutText=1``): text
going *into* the boundary carries no data out, and pasting code is what
researchers do all day (the SATRE guidance allows ingress of text). There is
no file transfer in RFB/noVNC and no printer in the sandbox.

``server_proxy_config()`` and ``xvnc_argv()`` are pure; the session itself
(window manager, menu, terminal, viewer on the first granted study) is started
by ``python -m insitu_workspace.desktop <socket>``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DISPLAY = ":1"
GEOMETRY = "1280x800"
NOVNC_DIR = "/usr/share/novnc"
PROXY_NAME = "desktop-vnc"
PAGE_PATH = "insitu/desktop"
#: the terminal of a new session, bottom left of the screen
TERMINAL = ["xterm", "-geometry", "100x16+20+560", "-title", "Terminal"]

#: Desktop tools with a menu entry each: (label, command). A command is kept in
#: the menu only when its program exists in the sandbox.
TOOLS: tuple[tuple[str, str], ...] = (
    ("Terminal", "xterm"),
    ("Files", "pcmanfm"),
    ("Aeskulap DICOM viewer", "aeskulap"),
    ("XMedCon", "xmedcon"),
    ("AMIDE", "amide"),
)


def xvnc_argv(unix_socket: str, *, display: str = DISPLAY, geometry: str = GEOMETRY) -> list[str]:
    """The X server's command line. Pure."""
    return [
        "Xtigervnc",
        display,
        "-rfbunixpath",
        unix_socket,
        "-rfbport",
        "-1",
        "-nolisten",
        "tcp",
        "-localhost",
        "-SecurityTypes",
        "None",
        "-SendCutText=0",
        "-SendPrimary=0",
        "-AcceptCutText=1",
        "-geometry",
        geometry,
        "-depth",
        "24",
        "-AlwaysShared",
    ]


def server_proxy_config(python: str = sys.executable) -> dict:
    """jupyter-server-proxy's ``ServerProxy.servers`` entry for the desktop. Pure."""
    return {
        PROXY_NAME: {
            "command": [python, "-m", "insitu_workspace.desktop", "{unix_socket}"],
            "unix_socket": True,
            "raw_socket_proxy": True,
            "timeout": 30,
            "launcher_entry": {"enabled": True, "title": "Desktop", "path_info": PAGE_PATH},
        }
    }


def first_study_file(datasets_root: str = "/mnt/datasets") -> str | None:
    """The first DICOM file of the first granted dataset, as the workspace sees it."""
    root = Path(datasets_root)
    try:
        dsets = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "by-name")  # ids, not names
    except OSError:
        return None
    for ds in dsets:
        for dirpath, dirnames, filenames in os.walk(ds, followlinks=True):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(".dcm"):
                    return os.path.join(dirpath, f)
    return None


def openbox_menu(tools: tuple[tuple[str, str], ...] = TOOLS) -> str:
    """An openbox root menu with one entry per available tool. Pure but for which()."""
    items = []
    for label, cmd in tools:
        if shutil.which(cmd.split()[0]):
            items.append(
                f'<item label="{label}"><action name="Execute"><command>{cmd}</command></action></item>'
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<openbox_menu xmlns="http://openbox.org/3.4/menu">\n'
        '<menu id="root-menu" label="insitu">\n' + "\n".join(items) + "\n</menu>\n</openbox_menu>\n"
    )


def openbox_rc(default_rc: str) -> str:
    """Debian's openbox configuration plus one rule: the terminal stays above other
    windows (a maximised viewer never hides it). Pure."""
    app = ('<application class="XTerm" title="Terminal"><layer>above</layer><focus>yes</focus>'
           "</application>")
    if "<applications>" in default_rc:
        return default_rc.replace("<applications>", "<applications>" + app, 1)
    return default_rc.replace("</openbox_config>", f"<applications>{app}</applications></openbox_config>", 1)


def _wait_for(path: str, proc: subprocess.Popen, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def run_session(unix_socket: str) -> int:
    """Start the X server on ``unix_socket`` and the desktop session on it; return
    when the X server ends. Runs as the researcher, inside the sandbox."""
    home = Path(os.environ.get("HOME", "/tmp"))
    cfg = home / ".config" / "openbox"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "menu.xml").write_text(openbox_menu())
    try:
        (cfg / "rc.xml").write_text(openbox_rc(Path("/etc/xdg/openbox/rc.xml").read_text()))
    except OSError:
        pass
    xvnc = subprocess.Popen(xvnc_argv(unix_socket))
    env = dict(os.environ, DISPLAY=DISPLAY)
    session: list[subprocess.Popen] = []

    def stop(*_):
        for p in session + [xvnc]:
            if p.poll() is None:
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    if not _wait_for(f"/tmp/.X11-unix/X{DISPLAY.lstrip(':')}", xvnc):
        return xvnc.wait() or 1
    if shutil.which("openbox"):
        session.append(subprocess.Popen(["openbox"], env=env, cwd=str(home)))
    study = first_study_file()
    if study and shutil.which("aeskulap"):
        session.append(subprocess.Popen(["aeskulap", study], env=env, cwd=str(home)))
        time.sleep(1.5)  # the terminal opens last, so that it stays in front of the viewer
    if shutil.which("xterm"):
        session.append(subprocess.Popen(TERMINAL, env=env, cwd=str(home)))
    rc = xvnc.wait()
    stop()
    return rc


if __name__ == "__main__":  # pragma: no cover - runs inside the sandbox
    sys.exit(run_session(sys.argv[1]))
