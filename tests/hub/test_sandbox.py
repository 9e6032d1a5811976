"""The local sandbox, tried for real: bubblewrap + setpriv + POSIX ACLs.

Two levels:
* direct: the sandbox command line of a plan (``hub.sandbox_spec.sandbox_argv``)
  runs a probe script; fast, covers every kernel-level promise;
* end to end: a real JupyterHub with ``LocalSandboxSpawner`` and the real
  proxy; a workspace is started for a researcher with dataset A, and code runs
  in its kernel (see ``test_sandbox_hub.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hub.plan import PlanSettings, build_plan
from hub.sandbox_spec import passwd_lines, sandbox_argv, sandbox_env
from hub.sandbox_workspace import core_binds
from insitu.manifest import merkle_root

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_support import GID_A, GID_B, make_lake_and_datasets  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WS_ENV = REPO / ".venv-workspace"

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="needs root and bubblewrap"),
]

PROBE = r'''
import errno, json, os, socket, sys
out = {}
def attempt(name, fn):
    try:
        r = fn()
        out[name] = {"ok": True, "value": r}
    except OSError as e:
        out[name] = {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}
a = sys.argv[1]; b_lake = sys.argv[2]; a_lake = sys.argv[3]; host_port = int(sys.argv[4]); abstract = sys.argv[5]
out["uid"] = os.getuid(); out["euid"] = os.geteuid(); out["gid"] = os.getgid(); out["groups"] = sorted(os.getgroups())
out["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
out["no_new_privs"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0]
attempt("read_a_via_symlink", lambda: len(open(a, "rb").read()))
attempt("read_a_via_lake", lambda: len(open(a_lake, "rb").read()))
attempt("read_b_via_lake", lambda: len(open(b_lake, "rb").read()))
attempt("list_lake", lambda: os.listdir("/mnt/datalake"))
attempt("list_subject_of_b", lambda: os.listdir(os.path.dirname(os.path.dirname(b_lake.rsplit("/", 2)[0] + "/x"))))
attempt("write_lake", lambda: open("/mnt/datalake/new.txt", "w").write("x"))
attempt("write_study_of_a", lambda: open(os.path.dirname(a_lake) + "/new.dcm", "w").write("x"))
attempt("write_dataset_folder", lambda: open("/mnt/datasets/ds-a/new.txt", "w").write("x"))
attempt("write_home", lambda: open(os.path.expanduser("~/result.txt"), "w").write("ok"))
attempt("list_datasets", lambda: sorted(os.listdir("/mnt/datasets")))
attempt("read_host_etc_shadow", lambda: len(open("/etc/shadow").read()))
attempt("list_root", lambda: sorted(os.listdir("/")))
attempt("list_repo", lambda: sorted(os.listdir(sys.argv[6])))
attempt("interfaces", lambda: sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
attempt("ipv4_routes", lambda: [l.split()[:3] for l in open("/proc/net/route").readlines()[1:]])
attempt("ipv6_routes", lambda: [l.split()[6] for l in open("/proc/net/ipv6_route").readlines()
                                if l.split()[9] != "lo"])
def connect_host():
    s = socket.create_connection(("127.0.0.1", host_port), timeout=2); s.close(); return "connected"
attempt("connect_host_loopback", connect_host)
def connect_abstract():
    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect("\0" + abstract); s.close(); return "connected"
attempt("connect_host_abstract_socket", connect_abstract)
def setuid_root():
    os.setuid(0); return "root"
attempt("setuid_root", setuid_root)
# the datasets by name (/mnt/datasets/by-name/...): the same files as by id; the researcher can
# neither remove, replace nor add a name (rm, ln -sf, mv over it, mkdir) and the link stays as made
import subprocess
def sh(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return [p.returncode, p.stderr.strip()[-200:]]
def tree(top):
    return sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top, followlinks=True) for f in fs)
by_name = json.loads(os.environ.get("INSITU_DATASETS_BY_NAME") or "{}")
out["by_name"] = by_name
attempt("list_by_name", lambda: sorted(os.listdir("/mnt/datasets/by-name")))
attempt("mkdir_in_by_name", lambda: os.mkdir("/mnt/datasets/by-name/mine"))
out["named"] = {}
for ds, path in by_name.items():
    r = out["named"][ds] = {"link": os.readlink(path), "files": tree(path), "files_by_id": tree("/mnt/datasets/" + ds)}
    open(os.path.expanduser("~/decoy"), "w").write("x")
    r["rm"] = sh("rm", "-f", path)
    r["ln_sf"] = sh("ln", "-sf", os.path.expanduser("~"), path)
    r["ln_sfn"] = sh("ln", "-sfn", os.path.expanduser("~"), path)
    r["mv_over"] = sh("mv", "-fT", os.path.expanduser("~/decoy"), path)
    r["mv_away"] = sh("mv", "-f", path, os.path.expanduser("~/stolen"))
    r["link_after"] = os.readlink(path)
from insitu_workspace import datasets  # the workspace library, with the core's rules bound beside it
out["library_root"] = datasets.merkle_root([("sub-1/st-1", "ab" * 32), ("sub-2/st-1", "cd" * 32)])
out["library_rules_from"] = datasets.merkle_root.__module__
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox-world")
    layout = make_lake_and_datasets(root)
    homes = root / "homes"
    homes.mkdir()
    return root, layout, homes


def run_probe(world, granted=("ds-a",), user="alice"):
    root, layout, homes = world
    settings = PlanSettings(lake_dir=str(layout.lake), datasets_dir=str(layout.datasets), home_root=str(homes))
    # both named "Lung CT" v1: alone, a dataset is /mnt/datasets/by-name/lung-ct-v1; together, both get their id
    grants = [{"dataset_id": d, "gid": layout.gids[d], "name": "Lung CT", "version": "1"} for d in granted]
    plan = build_plan(user, "lung", grants, list(granted), "notebook-cpu", settings, session_id="s1")
    home = Path(plan.home.source)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, plan.uid, plan.gid)
    os.chmod(home, 0o700)
    rd = root / f"run-{user}-{len(granted)}"
    (rd / "etc").mkdir(parents=True, exist_ok=True)
    (rd / "run").mkdir(exist_ok=True)
    os.chown(rd / "run", plan.uid, plan.gid)
    pw, gr = passwd_lines(plan)
    (rd / "etc/passwd").write_text(pw)
    (rd / "etc/group").write_text(gr)
    (rd / "etc/hosts").write_text("127.0.0.1 localhost\n")

    # a server on the host's loopback and an abstract Unix socket on the host
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    abstract = f"insitu-test-{os.getpid()}-{user}"
    usrv = socket.socket(socket.AF_UNIX)
    usrv.bind("\0" + abstract)
    usrv.listen(5)
    accepted = []

    def acceptor(s):
        s.settimeout(5)
        try:
            c, _ = s.accept()
            accepted.append(c)
        except OSError:
            pass

    threads = [threading.Thread(target=acceptor, args=(s,), daemon=True) for s in (srv, usrv)]
    for t in threads:
        t.start()
    probe = root / "probe.py"
    probe.write_text(PROBE)
    os.chmod(probe, 0o644)
    argv = sandbox_argv(
        plan,
        [f"{WS_ENV}/bin/python", "/opt/probe.py", layout.dataset_file("ds-a"), layout.lake_file("ds-b"),
         layout.lake_file("ds-a"), str(srv.getsockname()[1]), abstract, str(REPO)],
        runtime_dir=str(rd),
        workspace_env=str(WS_ENV),
        workspace_code=str(REPO / "hub" / "workspace"),
        workspace_etc=str(REPO / "hub" / "workspace" / "etc" / "jupyter"),
        extra_ro_binds=((str(probe), "/opt/probe.py"),) + core_binds(),
    )
    env = sandbox_env(plan, {}, str(WS_ENV))
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    finally:
        srv.close()
        usrv.close()
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["_accepted"] = len(accepted)
    result["_plan"] = plan
    return result


@pytest.fixture(scope="module")
def probe_a(world):
    return run_probe(world)


def test_runs_as_the_users_uid_with_exactly_the_dataset_gid(probe_a):
    plan = probe_a["_plan"]
    assert probe_a["uid"] == probe_a["euid"] == plan.uid != 0
    assert probe_a["gid"] == plan.gid
    assert probe_a["groups"] == [GID_A]  # supplementary groups: exactly the dataset gid
    assert GID_B not in probe_a["groups"]
    assert set(probe_a["caps"]) == {"0000000000000000"}
    assert probe_a["no_new_privs"] == "1"
    assert probe_a["setuid_root"]["ok"] is False and probe_a["setuid_root"]["errno"] == "EPERM"


def test_the_workspace_library_checks_with_the_cores_rules(probe_a):
    """Inside the sandbox, insitu_workspace.datasets uses insitu.manifest (bound read-only), not a copy."""
    assert probe_a["library_rules_from"] == "insitu.manifest"
    assert probe_a["library_root"] == merkle_root([("sub-2/st-1", "cd" * 32), ("sub-1/st-1", "ab" * 32)])


def test_reads_dataset_a_through_its_symlinks(probe_a):
    assert probe_a["read_a_via_symlink"]["ok"], probe_a["read_a_via_symlink"]
    assert probe_a["read_a_via_symlink"]["value"] > 128  # a real DICOM file
    assert probe_a["read_a_via_lake"]["ok"]


def test_cannot_read_dataset_b_by_its_lake_path(probe_a):
    assert probe_a["read_b_via_lake"] == {"ok": False, "errno": "EACCES"}


def test_cannot_list_the_lake(probe_a):
    assert probe_a["list_lake"] == {"ok": False, "errno": "EACCES"}
    assert probe_a["list_subject_of_b"]["ok"] is False


def test_cannot_write_lake_or_dataset_folder(probe_a):
    for k in ("write_lake", "write_study_of_a", "write_dataset_folder"):
        assert probe_a[k]["ok"] is False, k
        assert probe_a[k]["errno"] in ("EROFS", "EACCES"), (k, probe_a[k])
    assert probe_a["write_home"]["ok"] is True


def test_sees_only_its_own_datasets_and_no_host_files(probe_a):
    assert probe_a["list_datasets"]["value"] == ["by-name", "ds-a"]
    assert probe_a["read_host_etc_shadow"]["ok"] is False
    # of the repository, only the workspace environment is there
    assert probe_a["list_repo"]["value"] == [".venv-workspace"]
    assert "root" not in probe_a["list_root"]["value"]


def test_network_is_loopback_only(probe_a):
    assert probe_a["interfaces"]["value"] == ["lo"]
    # no IPv4 route at all in the main table, no IPv6 route except via lo
    assert probe_a["ipv4_routes"]["value"] == []
    assert probe_a["ipv6_routes"]["value"] == []


def test_host_loopback_and_host_abstract_sockets_are_unreachable(probe_a):
    assert probe_a["connect_host_loopback"] == {"ok": False, "errno": "ECONNREFUSED"}
    assert probe_a["connect_host_abstract_socket"]["ok"] is False
    assert probe_a["_accepted"] == 0


def test_home_is_owned_by_the_user_and_private(probe_a, world):
    plan = probe_a["_plan"]
    st = Path(plan.home.source).stat()
    assert st.st_uid == plan.uid and (st.st_mode & 0o777) == 0o700
    result = Path(plan.home.source) / "result.txt"
    assert result.read_text() == "ok" and result.stat().st_uid == plan.uid


def assert_names_are_links_the_researcher_cannot_change(r, names):
    assert r["by_name"] == {ds: f"/mnt/datasets/by-name/{n}" for ds, n in names.items()}
    assert r["list_by_name"]["value"] == sorted(names.values())
    assert r["mkdir_in_by_name"] == {"ok": False, "errno": "EACCES"}
    for ds, named in r["named"].items():
        assert named["link"] == named["link_after"] == f"../{ds}"
        assert named["files"] == named["files_by_id"] and "manifest.json" in named["files"]
        assert any(f.endswith(".dcm") for f in named["files"]), named["files"]  # the studies, through the link
        for how in ("rm", "ln_sf", "ln_sfn", "mv_over", "mv_away"):
            code, err = named[how]
            assert code != 0 and ("Permission denied" in err or "Read-only file system" in err), (how, named[how])


def test_each_dataset_by_name_lists_its_files_and_cannot_be_changed(probe_a):
    assert_names_are_links_the_researcher_cannot_change(probe_a, {"ds-a": "lung-ct-v1"})


def test_two_datasets_two_gids(world):
    r = run_probe(world, granted=("ds-a", "ds-b"), user="carol")
    assert GID_A in r["groups"] and GID_B in r["groups"]
    # the same name and version twice: both stay reachable, by name and id
    assert_names_are_links_the_researcher_cannot_change(r, {"ds-a": "lung-ct-v1--ds-a", "ds-b": "lung-ct-v1--ds-b"})
    assert r["read_b_via_lake"]["ok"] and r["read_a_via_symlink"]["ok"]
    assert r["list_lake"]["ok"] is False
