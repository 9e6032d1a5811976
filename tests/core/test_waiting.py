"""insitu.waiting: waiting for a process started here to answer over HTTP, against a real loopback server
and real processes."""
from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time

import httpx
import pytest

from insitu.waiting import exit_of, wait_for_answer


class Flaky(http.server.BaseHTTPRequestHandler):
    answers = [503, 503, 200]

    def do_GET(self):
        self.send_response(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_answers_after_some_refusals(server):
    calls = []

    def call():
        calls.append(1)
        return httpx.get(server, timeout=2)

    assert wait_for_answer(call, deadline=time.monotonic() + 30, interval=0.01) is True
    assert len(calls) == 3


def test_nobody_listening_until_the_deadline():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Flaky)
    port = srv.server_address[1]
    srv.server_close()  # the port is free: every call is a connection error
    assert wait_for_answer(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1),
                           deadline=time.monotonic() + 0.3, interval=0.05) is False


def test_a_process_that_exited_is_said_at_once():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(timeout=60)
    with pytest.raises(RuntimeError, match="tool exited with status 3:\nits log"):
        wait_for_answer(lambda: httpx.get("http://127.0.0.1:9/", timeout=1), deadline=time.monotonic() + 60,
                        exited=exit_of(proc, "tool", lambda: "its log"))


def test_a_running_process_is_waited_for():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert exit_of(proc, "tool")() is None
        assert exit_of(None, "tool")() is None
    finally:
        proc.kill()
        proc.wait()
