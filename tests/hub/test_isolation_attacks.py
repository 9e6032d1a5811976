"""Attacks from inside a real workspace on the machine around it (issue 11, items 2, 5, 6, 7).

A real JupyterHub + configurable-http-proxy with LocalSandboxSpawner; code runs
in the researcher's own kernel (through the proxy), as the researcher's uid,
in the bubblewrap sandbox. The dataset service's sessions API is the stand-in
of ``sandbox_support``.

* item 7: the kernel talks HTTP to its hub socket: the login page and every
  route the single-user server does not need are refused; what it needs passes;
* item 5: the kernel exceeds each limit of a small profile (memory, processes,
  /tmp, CPU), tries to make a user namespace and calls system calls the seccomp
  filter refuses; the workspace is contained, the hub still answers;
* item 2: a tight loop in the workspace swaps symlinks to root-owned decoys and
  to another dataset's lake folder into every place root used to act on, during
  hub restarts and workspace stops and starts; nothing outside changes;
* item 6: a file written in project A's session is not in project B's home.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_support import StandInDatasetService, kernel_exec, make_lake_and_datasets  # noqa: E402
from test_sandbox_hub import sandbox_hub_config, wait_ready, wait_stopped  # noqa: E402

from hub.limits import WorkspaceCgroup  # noqa: E402
from hub.plan import PlanSettings, derive_uid  # noqa: E402
from tests.fixtures.jupyterhub import start_hub  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.timeout(1200),  # each test starts one or more real workspaces, restarts the hub
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("bwrap") or not (REPO / ".venv-workspace/bin/jupyterhub-singleuser").exists()
        or not os.path.isdir("/sys/fs/cgroup/memory"),
        reason="needs root, bubblewrap, cgroup v1 and .venv-workspace (scripts/setup.d/20-workspace-env.sh)",
    ),
]

SMALL = {"name": "small", "display_name": "Small notebook", "kind": "notebook",
         "resources": {"cpu_limit": 1.0, "cpu_guarantee": 0.1, "mem_limit": 512 * MiB, "mem_guarantee": 64 * MiB,
                       "pids_limit": 160, "tmp_limit": 32 * MiB}}
LUNG = {"profile": "small", "project": "lung", "dataset_ids": ["ds-a"]}
BRAIN = {"profile": "small", "project": "brain", "dataset_ids": ["ds-b"]}
RACE = {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]}  # two CPUs: a tight loop


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    layout = make_lake_and_datasets(root)
    homes = root / "homes"
    homes.mkdir()
    decoys = root / "decoys"
    decoys.mkdir(mode=0o755)
    (decoys / "host-file").write_text("root's file\n")
    os.chmod(decoys / "host-file", 0o644)
    (decoys / "host-dir").mkdir(mode=0o755)
    service = StandInDatasetService(layout, grants={("dora", "lung"): ["ds-a"], ("dora", "brain"): ["ds-b"]})
    service.start()
    runtime_root = f"/tmp/insitu-atk-{os.getpid()}"
    users = {"dora": ["researchers", "project-lung", "project-brain"], "mallory": ["researchers"]}
    config = sandbox_hub_config(service, homes, runtime_root) + f"""
c.LocalSandboxSpawner.extra_profiles = [{SMALL!r}]
c.LocalSandboxSpawner.offered_profiles = ["notebook-cpu", "small"]
c.LocalSandboxSpawner.start_timeout = 240  # a one-CPU workspace on a busy two-core machine
c.LocalSandboxSpawner.http_timeout = 240
"""
    state = {"hub": start_hub(root / "hub", users=users, extra_config=config),
             "restart": lambda: start_hub(root / "hub", users=users, extra_config=config),
             "service": service, "layout": layout, "homes": homes, "decoys": decoys, "runtime_root": runtime_root}
    yield state
    hub = state["hub"]
    for u in users:
        hub.api("DELETE", f"/users/{u}/server")
    time.sleep(1)
    hub.stop()
    service.stop()
    # a workspace whose start failed must not outlive the test: kill what is left in its cgroups
    for d in glob.glob(f"/sys/fs/cgroup/pids/insitu-{derive_uid('dora', PlanSettings())}-*"):
        WorkspaceCgroup(os.path.basename(d)[len("insitu-"):]).remove()
    shutil.rmtree(runtime_root, ignore_errors=True)


def start(world, options):
    hub = world["hub"]
    r = hub.api("POST", "/users/dora/server", json=options)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "dora", timeout=250)
    return hub.url + "/user/dora/", hub.token_for("dora")


def stop(world):
    hub = world["hub"]
    r = hub.api("DELETE", "/users/dora/server")
    assert r.status_code in (202, 204), r.text
    wait_stopped(hub, "dora")


def run(url, token, code, timeout=120):
    out = kernel_exec(url, token, code, timeout=timeout)
    lines = [line for line in out.strip().split("\n") if line.startswith("{")]
    assert lines, out
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise AssertionError(out) from None


def snapshot(paths):
    out = {}
    for p in paths:
        st = os.lstat(p)
        out[str(p)] = (st.st_uid, st.st_gid, oct(st.st_mode))
    return out


def cgroup_of(world) -> WorkspaceCgroup:
    uid = derive_uid("dora", PlanSettings())
    [rd] = glob.glob(f"{world['runtime_root']}/{uid}-*")
    return WorkspaceCgroup(os.path.basename(rd))


# --------------------------------------------------------------------------
# item 7: hub.sock passes only what the single-user server needs
# --------------------------------------------------------------------------

HUB_HTTP = r'''
import os, json, socket
from urllib.parse import unquote, urlparse
api = os.environ["JUPYTERHUB_API_URL"]
u = urlparse(api)
sock = unquote(u.netloc)
prefix = u.path.rstrip("/")  # .../hub/api
hub = prefix[:-len("/api")]
def call(method, path, body=b"", headers=()):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(sock)
    head = [f"{method} {path} HTTP/1.1", "Host: hub", f"Content-Length: {len(body)}", "Connection: close", *headers]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]), data.split(b"\r\n\r\n", 1)[-1][:300].decode("latin-1")
tok = os.environ["JUPYTERHUB_API_TOKEN"]
auth = (f"Authorization: token {tok}",)
res = {"sock": sock}
form = b"username=mallory&password=guess"
res["login_post"] = call("POST", hub + "/login", form, ("Content-Type: application/x-www-form-urlencoded",))
res["login_get"] = call("GET", hub + "/login")
res["users"] = call("GET", prefix + "/users", headers=auth)
res["other_user"] = call("GET", prefix + "/users/mallory", headers=auth)
res["new_token"] = call("POST", prefix + "/users/dora/tokens", b"{}", auth)
res["other_activity"] = call("POST", prefix + "/users/mallory/activity", b"{}", auth)
res["encoded"] = call("GET", prefix + "/%75ser", headers=auth)
res["smuggle"] = call("GET", prefix + "/", b"0\r\n\r\nPOST " + hub.encode() + b"/login HTTP/1.1\r\nHost: hub\r\n"
                      b"Content-Length: 0\r\n\r\n", ("Transfer-Encoding: chunked",))
res["version"] = call("GET", prefix + "/")
res["whoami"] = call("GET", prefix + "/user", headers=auth)
import datetime
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
act = json.dumps({"servers": {"": {"last_activity": now}}, "last_activity": now}).encode()
res["activity"] = call("POST", prefix + "/users/dora/activity", act, auth + ("Content-Type: application/json",))
res["oauth"] = call("POST", prefix + "/oauth2/token", b"grant_type=authorization_code&code=bogus",
                    ("Content-Type: application/x-www-form-urlencoded",))
print(json.dumps(res))
'''


def test_hub_socket_refuses_the_login_page_and_passes_what_the_server_needs(world):
    url, token = start(world, RACE)
    res = run(url, token, HUB_HTTP)
    refused = ("login_post", "login_get", "users", "other_user", "new_token", "other_activity", "encoded")
    for k in refused:
        assert res[k][0] == 403, (k, res[k])
    assert res["smuggle"][0] in (200, 400), res["smuggle"]  # the GET at most; never the request behind it
    assert res["version"][0] == 200, res["version"]
    assert res["whoami"][0] == 200 and '"name": "dora"' in res["whoami"][1], res["whoami"]
    assert res["activity"][0] in (200, 204), res["activity"]
    # the OAuth exchange reaches the hub (which refuses the bogus code itself), not the filter
    assert res["oauth"][0] not in (403, 404) and res["oauth"][0] < 500, res["oauth"]
    assert res["sock"] != "/run/insitu/hub.sock"  # not in a folder the researcher can write
    # the server still works through the hub (a fresh token is checked through hub.sock)
    r = httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    log = world["hub"].log()
    assert "hub.sock refused POST" in log
    assert not [line for line in log.splitlines() if "/hub/login" in line and "JupyterHub log" in line], log[-3000:]
    stop(world)


# --------------------------------------------------------------------------
# item 5: the kernel enforces the profile's limits; seccomp; no user namespaces
# --------------------------------------------------------------------------

LIMITS = r'''
import ctypes, errno, json, os, subprocess, sys, time
res = {}
# memory: 1 GiB allocated and touched under a 512 MiB profile
p = subprocess.run([sys.executable, "-c", "b = bytearray(1 << 30); b[::4096] = b'x' * len(b[::4096]); print('alive')"],
                   capture_output=True, text=True)
res["mem_rc"], res["mem_out"] = p.returncode, p.stdout.strip()
# processes: fork until the kernel says no
bomb = """
import os, time, signal
n = 0
kids = []
try:
    while n < 5000:
        pid = os.fork()
        if pid == 0:
            time.sleep(30); os._exit(0)
        kids.append(pid); n += 1
except OSError as e:
    print(n, e.errno)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
"""
p = subprocess.run([sys.executable, "-c", bomb], capture_output=True, text=True)
res["forks"] = p.stdout.split()
# /tmp: write until the file system is full
n = 0
try:
    with open("/tmp/fill", "wb") as f:
        while n < (1 << 30):
            f.write(b"x" * (1 << 20)); f.flush(); n += 1 << 20
    res["tmp"] = ["ok", n]
except OSError as e:
    res["tmp"] = [errno.errorcode[e.errno], n]
os.unlink("/tmp/fill")
# user namespaces and blocked system calls
p = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
res["unshare_rc"], res["unshare_err"] = p.returncode, p.stderr.strip()[-200:]
libc = ctypes.CDLL(None, use_errno=True)
def sc(*a):
    r = libc.syscall(*a)
    return [r, errno.errorcode.get(ctypes.get_errno(), "")]
res["unshare_user"] = sc(272, 0x10000000)        # unshare(CLONE_NEWUSER)
res["keyctl"] = sc(250, 0, -3, 0)                # keyctl(KEYCTL_GET_KEYRING_ID, session keyring)
res["ptrace"] = sc(101, 0, 0, 0, 0)              # ptrace(PTRACE_TRACEME)
res["mount"] = sc(165, b"none", b"/tmp", b"tmpfs", 0, 0)
res["seccomp_mode"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")]
print(json.dumps(res))
'''


def test_workspace_limits_are_enforced_by_the_kernel(world):
    url, token = start(world, LUNG)
    cg = cgroup_of(world)
    assert int(cg.read("memory", "memory.limit_in_bytes")) == 512 * MiB
    assert int(cg.read("cpu", "cpu.cfs_quota_us")) == 100_000 and int(cg.read("cpu", "cpu.cfs_period_us")) == 100_000
    assert cg.read("pids", "pids.max").strip() == "160"
    res = run(url, token, LIMITS, timeout=240)
    # memory: the allocating process is killed by the kernel's OOM killer, inside the workspace
    assert res["mem_rc"] == -9 and res["mem_out"] == "", res
    oom = dict(line.split() for line in cg.read("memory", "memory.oom_control").splitlines())
    assert int(oom["oom_kill"]) > 0, oom  # the kernel's OOM killer acted in this cgroup
    # processes: the fork bomb stops at the cgroup's limit with EAGAIN
    n, err = int(res["forks"][0]), int(res["forks"][1])
    assert n < 160 and err == 11, res["forks"]
    assert int(cg.read("pids", "pids.events").split()[1]) > 0
    # /tmp: full at its size (32 MiB), ENOSPC
    assert res["tmp"][0] == "ENOSPC" and res["tmp"][1] <= 32 * MiB, res["tmp"]
    # CPU: busy processes in the workspace until the kernel throttles its cgroup (its counter, not a clock)
    run(url, token, "import subprocess, sys, json\n"
                    "ps = [subprocess.Popen([sys.executable, '-c', 'while True: pass'], start_new_session=True) "
                    "for _ in range(4)]\nprint(json.dumps({'busy': [p.pid for p in ps]}))")
    deadline = time.monotonic() + 240  # a bound for a busy machine, not a measurement
    while time.monotonic() < deadline:
        stat = dict(line.split() for line in cg.read("cpu", "cpu.stat").splitlines())
        if int(stat["nr_throttled"]) > 0:
            break
        time.sleep(1)
    assert int(stat["nr_throttled"]) > 0, stat
    # no user namespace, and the seccomp filter refuses what container runtimes refuse
    assert res["unshare_rc"] != 0, res
    assert res["unshare_user"] == [-1, "EPERM"]
    for call in ("keyctl", "ptrace", "mount"):
        assert res[call] == [-1, "EPERM"], (call, res[call])
    assert res["seccomp_mode"] == ["2"]
    # the workspace lives on (its server answers) and the machine is fine (the hub answers)
    r = httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200
    assert world["hub"].api("GET", "/users/dora").status_code == 200
    stop(world)
    # the cgroups went with the workspace
    assert not glob.glob(f"/sys/fs/cgroup/pids/insitu-{derive_uid('dora', PlanSettings())}-*")


# --------------------------------------------------------------------------
# item 2: root never follows the researcher's symlinks
# --------------------------------------------------------------------------

RACER = r'''
import os, subprocess, sys, json
code = """
import os, sys, itertools
targets = sys.argv[1:]
dirs = [d for d in ("/run/insitu", "/run/insitu/jupyter", os.path.expanduser("~")) if os.access(d, os.W_OK)]
names = ["hub.sock", "jupyter.sock", ".insitu", "hub", "etc"]
for i in itertools.count():
    t = targets[i % len(targets)]
    for d in dirs:
        for n in names:
            tmp = os.path.join(d, ".swap%d" % (i % 7))
            try:
                os.symlink(t, tmp)
                os.rename(tmp, os.path.join(d, n))
            except OSError:
                pass
"""
p = subprocess.Popen([sys.executable, "-c", code, *TARGETS], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(json.dumps({"racer": p.pid}))
'''


def test_symlink_swapping_loop_during_hub_restarts_and_workspace_restarts_changes_nothing_outside(world):
    layout, decoys = world["layout"], world["decoys"]
    other_subject = layout.lake / "subj-002"  # dataset B's subject: dora's lung session does not hold it
    watched = [decoys / "host-file", decoys / "host-dir", other_subject, other_subject / "study-1",
               layout.lake, layout.datasets / "ds-b"]
    before = snapshot(watched)
    targets = [str(p) for p in watched]
    racer = RACER.replace("TARGETS", repr(targets))
    url, token = start(world, RACE)
    run(url, token, racer)
    for round_ in range(3):
        # the hub restarts while the loop runs: it re-creates the hub socket of the running workspace
        world["hub"].stop()
        world["hub"] = world["restart"]()
        wait_ready(world["hub"], "dora", timeout=60)
        url, token = world["hub"].url + "/user/dora/", world["hub"].token_for("dora")
        assert snapshot(watched) == before, round_
        if round_ == 1:  # and a stop (teardown of the runtime folder) and a new start with the loop running
            stop(world)
            assert snapshot(watched) == before
            url, token = start(world, RACE)
            run(url, token, racer)
    stop(world)
    assert snapshot(watched) == before


# --------------------------------------------------------------------------
# item 6: one home per user and project
# --------------------------------------------------------------------------


def test_a_file_written_in_project_a_is_not_in_project_b(world):
    homes = world["homes"]
    url, token = start(world, LUNG)
    res = run(url, token, "import os, json; open('lung-notes.txt', 'w').write('copied under the lung grant'); "
                          "print(json.dumps({'home': os.getcwd(), 'ls': sorted(os.listdir('.'))}))")
    assert "lung-notes.txt" in res["ls"]
    stop(world)
    url, token = start(world, BRAIN)
    res = run(url, token, "import os, json, glob; print(json.dumps({'ls': sorted(os.listdir('.')), "
                          "'find': [p for d in ('/home', '/tmp', '/run', '/mnt') "
                          "for p in glob.glob(d + '/**/lung-notes.txt', recursive=True)]}))")
    assert "lung-notes.txt" not in res["ls"] and res["find"] == [], res
    stop(world)
    assert (homes / "dora" / "lung" / "lung-notes.txt").read_text() == "copied under the lung grant"
    assert not (homes / "dora" / "brain" / "lung-notes.txt").exists()
    st = os.stat(homes / "dora")
    assert st.st_uid == 0 and not st.st_mode & 0o022  # the researcher cannot rename or swap a project home
