"""Golden and invariant tests for the pure sandbox builder (hub/sandbox_spec.py).

Golden files: tests/hub/golden/sandbox_*.json hold {"input": ..., "expected": ...}: the input
is a workspace plan's (as in plan_*.json) plus the host side of the sandbox (paths, the hub's
environment, the server's command); the expected is the bubblewrap + setpriv command line, the
environment and the generated /etc files. Regenerate after an intended change with
INSITU_UPDATE_GOLDEN=1 and review the diff. That the command line really isolates is tried
with bubblewrap in test_sandbox.py and test_isolation_attacks.py.
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from hub.plan import PlanSettings, build_plan
from hub.sandbox_spec import (
    etc_contents,
    host_usr_links,
    parent_dirs,
    sandbox_argv,
    sandbox_env,
    server_command,
    server_env,
    unix_url,
)

GOLDEN = Path(__file__).parent / "golden"
USR_LINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"))
HOST = dict(runtime_dir="/tmp/insitu-ws/1234-abcd", workspace_env="/repo/.venv-workspace",
            workspace_code="/repo/hub/workspace", workspace_etc="/repo/hub/workspace/etc/jupyter")


def plan_of(inp: dict):
    return build_plan(inp["user"], inp["project"], inp["granted"], inp["chosen"], inp["profile"],
                      PlanSettings(**inp.get("settings", {})), session_id=inp.get("session_id"))


def render(inp: dict) -> dict:
    plan = plan_of(inp)
    host = inp["host"]
    argv = sandbox_argv(
        plan,
        server_command(host["cmd"], host["args"]),
        runtime_dir=host["runtime_dir"],
        workspace_env=host["workspace_env"],
        workspace_code=host["workspace_code"],
        workspace_etc=host["workspace_etc"],
        bwrap=host["bwrap"],
        setpriv=host["setpriv"],
        extra_ro_binds=tuple(tuple(b) for b in host["extra_ro_binds"]),
        hub_dir=host.get("hub_dir"),
        server_dir=host.get("server_dir"),
        tmp_size=plan.resources.tmp_limit,
        seccomp_fd=host.get("seccomp_fd"),
        shm_size=host.get("shm_size"),
        usr_links=tuple(tuple(x) for x in host["usr_links"]),
    )
    env = server_env(plan, host["hub_env"], host["workspace_env"], host["base_url"])
    return {"argv": argv, "env": env, "etc": etc_contents(plan)}


def golden_cases():
    return sorted(GOLDEN.glob("sandbox_*.json"))


@pytest.mark.parametrize("path", golden_cases(), ids=lambda p: p.stem)
def test_golden(path):
    case = json.loads(path.read_text())
    got = render(case["input"])
    if os.environ.get("INSITU_UPDATE_GOLDEN"):
        case["expected"] = got
        path.write_text(json.dumps(case, indent=2, sort_keys=True) + "\n")
    assert got == case["expected"]


def test_there_are_golden_cases():
    assert len(golden_cases()) >= 3


S = PlanSettings(lake_dir="/srv/lake", datasets_dir="/srv/datasets", home_root="/srv/homes")
GRANTS = [{"dataset_id": "ds-a", "gid": 70001}, {"dataset_id": "ds-b", "gid": 70002}]


def argv_for(plan, **kw):
    return sandbox_argv(plan, ["jupyterhub-singleuser"], **HOST, usr_links=USR_LINKS, **kw)


def setpriv_part(argv: list[str]) -> list[str]:
    i = argv.index("--chdir")
    return argv[i + 3:]


def test_the_command_drops_to_the_plans_uid_and_exactly_its_dataset_gids():
    plan = build_plan("alice", "lung", GRANTS, ["ds-b", "ds-a"], "notebook-cpu", S)
    assert setpriv_part(argv_for(plan)) == [
        "setpriv", f"--reuid={plan.uid}", f"--regid={plan.gid}", "--groups=70002,70001",
        "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        "jupyterhub-singleuser",
    ]
    assert plan.uid != 0 and plan.supplementary_gids == (70002, 70001)  # the chosen order


def test_no_dataset_gid_means_no_supplementary_group_at_all():
    plan = replace(build_plan("alice", "lung", GRANTS, ["ds-a"], "notebook-cpu", S), supplementary_gids=())
    part = setpriv_part(argv_for(plan))
    assert "--clear-groups" in part and not any(a.startswith("--groups") for a in part)


def test_only_the_home_and_the_workspaces_own_folders_are_writable():
    plan = build_plan("alice", "lung", GRANTS, ["ds-a"], "notebook-cpu", S)
    argv = argv_for(plan, hub_dir="/tmp/insitu-ws/1234-abcd/hub", server_dir="/tmp/insitu-ws/1234-abcd/srv")
    head = argv[:argv.index("--chdir")]
    writable = [(head[i + 1], head[i + 2]) for i, a in enumerate(head) if a == "--bind"]
    assert writable == [(plan.home.source, plan.home.target), ("/tmp/insitu-ws/1234-abcd/run", "/run/insitu"),
                        ("/tmp/insitu-ws/1234-abcd/srv", "/run/insitu-server")]
    ro = [(head[i + 1], head[i + 2]) for i, a in enumerate(head) if a == "--ro-bind"]
    assert ("/srv/lake", plan.mounts[0].target) in ro and ("/tmp/insitu-ws/1234-abcd/hub", "/run/insitu-hub") in ro
    assert "--unshare-net" in head and "--share-net" not in head


def test_the_seccomp_descriptor_comes_first():
    plan = build_plan("alice", "lung", GRANTS, ["ds-a"], "notebook-cpu", S)
    assert argv_for(plan, seccomp_fd=7)[:3] == ["bwrap", "--seccomp", "7"]
    assert "--seccomp" not in argv_for(plan)


def test_the_environment_carries_nothing_of_the_hubs_own():
    plan = build_plan("alice", "lung", GRANTS, ["ds-a"], "notebook-cpu", S)
    hub_env = {"JUPYTERHUB_API_TOKEN": "t", "JPY_API_TOKEN": "t", "MEM_LIMIT": "1", "CPU_LIMIT": "1",
               "INSITU_INSITU_HUB_TOKEN": "secret", "HOME": "/root", "LD_PRELOAD": "x.so", "PYTHONPATH": "/hub"}
    env = sandbox_env(plan, hub_env, "/ws")
    assert env["JUPYTERHUB_API_TOKEN"] == env["JPY_API_TOKEN"] == "t" and env["MEM_LIMIT"] == "1"
    assert "INSITU_INSITU_HUB_TOKEN" not in env and "LD_PRELOAD" not in env
    assert env["HOME"] == plan.home.target and env["PYTHONPATH"] == "/opt/insitu/python"
    assert env["PATH"].startswith("/ws/bin:")


def test_server_env_names_the_profile_and_the_desktop_opens_the_desktop():
    desk = build_plan("alice", "lung", GRANTS, ["ds-a"], "desktop", S)
    nb = build_plan("alice", "lung", GRANTS, ["ds-a"], "notebook-cpu", S)
    e = server_env(desk, {}, "/ws", "/user/alice/")
    assert e["INSITU_WORKSPACE_KIND"] == "desktop" and e["JUPYTERHUB_DEFAULT_URL"] == "/insitu/desktop"
    assert e["JUPYTERHUB_SERVICE_URL"] == "http://127.0.0.1:8888/user/alice/"
    assert "JUPYTERHUB_DEFAULT_URL" not in server_env(nb, {}, "/ws", "/")


def test_the_server_listens_on_its_socket_only():
    cmd = server_command(["jupyterhub-singleuser"], ["--port=8888", "--ip=127.0.0.1", "--debug"])
    assert cmd == ["jupyterhub-singleuser", "--sock=/run/insitu-server/jupyter.sock",
                   "--ServerApp.sock_mode=0660", "--debug"]


def test_parent_folders_are_made_shallowest_first_and_stop_at_premade_ones():
    assert parent_dirs(["/mnt/datasets/ds-a", "/opt/insitu/python/insitu", "/usr/x/y", "/etc/z/w", "/tmp/a"]) == [
        "/mnt", "/opt", "/etc/z", "/mnt/datasets", "/opt/insitu", "/usr/x", "/opt/insitu/python"]


def test_etc_files_name_the_dataset_groups():
    plan = build_plan("alice", "lung", GRANTS, ["ds-b"], "notebook-cpu", S)
    etc = etc_contents(plan)
    assert f"jovyan:x:{plan.uid}:{plan.gid}:alice:{plan.home.target}:/bin/bash" in etc["passwd"]
    assert "dataset-ds-b:x:70002:jovyan" in etc["group"] and "70001" not in etc["group"]
    assert etc["hosts"].startswith("127.0.0.1 localhost workspace")


def test_without_links_given_the_hosts_merged_usr_links_are_used():
    plan = build_plan("alice", "lung", GRANTS, ["ds-a"], "notebook-cpu", S)
    assert sandbox_argv(plan, ["x"], **HOST) == sandbox_argv(plan, ["x"], **HOST, usr_links=host_usr_links())


def test_unix_url_quotes_the_whole_path():
    assert unix_url("/run/insitu-hub/hub.sock") == "http+unix://%2Frun%2Finsitu-hub%2Fhub.sock"


def test_each_dataset_is_also_a_root_made_symlink_by_name_to_its_own_folder():
    named = [{**GRANTS[0], "name": "Lung CT demo", "version": "1"}, {**GRANTS[1], "name": "../../etc", "version": "2"}]
    plan = build_plan("alice", "lung", named, ["ds-a", "ds-b"], "notebook-cpu", S)
    argv = argv_for(plan)
    head = argv[:argv.index("--chdir")]
    links = [(head[i + 1], head[i + 2]) for i, a in enumerate(head) if a == "--symlink" and "/mnt/" in head[i + 2]]
    assert links == [("../ds-b", "/mnt/datasets/by-name/etc-v2"), ("../ds-a", "/mnt/datasets/by-name/lung-ct-demo-v1")]
    # the folder of the links is bubblewrap's (root's, 0755), made before them; no bind lands in it
    i = head.index("/mnt/datasets/by-name")
    assert head[i - 3:i + 1] == ["--perms", "0755", "--dir", "/mnt/datasets/by-name"]
    assert i < head.index("--symlink", head.index("/mnt/datasets/ds-b"))
    binds = [head[j + 2] for j, a in enumerate(head) if a in ("--bind", "--ro-bind", "--bind-try", "--ro-bind-try")]
    assert not [b for b in binds if b.startswith("/mnt/datasets/by-name")]
    # each link resolves to the dataset's own read-only mount
    for target, link in links:
        resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
        assert ("--ro-bind", resolved) in [(head[j], head[j + 2]) for j in range(len(head) - 2)]
