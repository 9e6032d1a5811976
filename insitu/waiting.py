"""Waiting for a process started here to answer over HTTP (the embedded platform's hub, Keycloak, the dev
chain): one loop instead of one per caller."""
from __future__ import annotations

import time
from typing import Callable

import httpx


def wait_for_answer(call: Callable[[], httpx.Response], *, deadline: float, interval: float = 0.5,
                    exited: Callable[[], str | None] = lambda: None) -> bool:
    """Make the request ``call`` every ``interval`` seconds until it answers 200 (True), or until
    ``time.monotonic()`` passes ``deadline`` (False). A connection error is "not yet". ``exited`` says
    why the process that should answer is gone (``None`` while it runs); once it says so, that is raised
    as ``RuntimeError``."""
    while True:
        gone = exited()
        if gone:
            raise RuntimeError(gone)
        try:
            if call().status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def exit_of(process, name: str, detail: Callable[[], str] = lambda: "") -> Callable[[], str | None]:
    """For ``wait_for_answer``: the exit of ``process`` (a ``subprocess.Popen``) in words, ``None`` while it
    runs."""
    def exited() -> str | None:
        if process is None or process.poll() is None:
            return None
        return f"{name} exited with status {process.returncode}" + (f":\n{detail()}" if detail() else "")
    return exited
