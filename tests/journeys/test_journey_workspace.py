"""A researcher's day in a workspace, through the real hub, proxy and sandbox.

alice (project lung) holds a grant for one demo dataset, built by the real
builder over a demo lake (ACLs, read-only lake at /mnt/datalake). Her
workspace is started through the hub's API with the options the form posts;
everything after is what JupyterLab does in the browser, over the server's
REST and websocket APIs through the proxy: the example notebooks found in the
home are run top to bottom in a kernel *of the workspace* (training with
DataLoader workers included), settings and layout are saved, the workspace is
stopped and started again (with ``~/.ipython`` present, which used to kill
every second start), the settings are still there, and the terminal is the
workspace's environment. The sessions API is the stand-in of
``tests/hub/sandbox_support.py``. The checkout stays as it was.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from journey_support import (REPO, StandInDatasetService, Workspace, demo_layout, git_status, make_wheel,
                             sandbox_hub_config, start_hub, wait_ready, wait_stopped)

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("bwrap") or not (REPO / ".venv-workspace/bin/jupyterhub-singleuser").exists(),
        reason="needs root, bubblewrap and .venv-workspace (scripts/setup.d/20-workspace-env.sh)",
    ),
]

WATCHED = ("hub", "notebooks", "bench", "package-lock.json", "package.json")
THEME = "@jupyterlab/apputils-extension:themes"
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    before = git_status(WATCHED)
    root = tmp_path_factory.mktemp("journey")
    layout, ds = demo_layout(root)
    homes = root / "homes"
    homes.mkdir()
    service = StandInDatasetService(layout, grants={("alice", "lung"): [ds]}).start()
    runtime_root = f"/tmp/insitu-jw-{os.getpid()}"
    users = {"alice": ["researchers", "project-lung"]}
    wheels, audit = root / "curated-wheels", root / "package-installs.jsonl"
    make_wheel(wheels, "insitu-demo-extra", "1.2.0")
    config = sandbox_hub_config(service, homes, runtime_root, wheels, audit)
    hub = start_hub(root / "hub", users=users, extra_config=config)
    st = {"hub": hub, "service": service, "ds": ds, "homes": homes, "before": before, "audit": audit,
          "restart": lambda: start_hub(root / "hub", users=users, extra_config=config, ports=hub.ports)}
    yield st
    hub = st["hub"]  # the hub of the restart test, if it ran
    hub.api("DELETE", "/users/alice/server")
    try:
        wait_stopped(hub, "alice")
    finally:
        hub.stop()
        service.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)


def start(stack) -> Workspace:
    hub = stack["hub"]
    r = hub.api("POST", "/users/alice/server",
                json={"profile": "notebook-cpu", "project": "lung", "dataset_ids": [stack["ds"]]})
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice")
    return Workspace(hub.url + "/user/alice/", hub.token_for("alice"))


def stop(stack) -> None:
    hub = stack["hub"]
    r = hub.api("DELETE", "/users/alice/server")
    assert r.status_code in (202, 204), r.text
    wait_stopped(hub, "alice")


@pytest.fixture(scope="module")
def ws(stack):
    return start(stack)


def test_new_home_has_the_examples_writable_copy_and_read_only_originals(stack, ws):
    listing = ws.get("api/contents/examples").json()
    names = {c["name"] for c in listing["content"]}
    assert set(NOTEBOOKS) <= names and "originals" in names
    out = ws.exec(
        "import os, errno\n"
        "open('examples/01-explore.ipynb', 'a').close(); print('copy-writable')\n"
        "try:\n    open('examples/originals/01-explore.ipynb', 'a')\n"
        "except OSError as e:\n    print('original', errno.errorcode[e.errno])\n")
    assert "copy-writable" in out and ("original EROFS" in out or "original EACCES" in out)


def test_dev_shm_is_private_writable_and_multiprocessing_works(ws):
    out = ws.exec(
        "import os, multiprocessing as mp\n"
        "st = os.statvfs('/dev/shm'); print('shm-bytes', st.f_blocks * st.f_frsize)\n"
        "lock = mp.Lock(); lock.acquire(); lock.release(); print('lock-ok')\n"
        "import torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "dl = DataLoader(TensorDataset(torch.arange(64.)), batch_size=8, num_workers=2)\n"
        "print('loader-sum', float(sum(b[0].sum() for b in dl)))\n"
        "from monai.data import CacheDataset\n"
        "cd = CacheDataset([{'x': i} for i in range(8)], transform=None, num_workers=2, progress=False)\n"
        "print('cache-len', len(cd))\n")
    shm = int(out.split("shm-bytes ")[1].split()[0])
    assert 0 < shm <= 2 * 1024**3
    assert "lock-ok" in out and "loader-sum 2016.0" in out and "cache-len 8" in out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_notebook_runs_to_the_end_inside_the_workspace(stack, ws, name):
    prelude = "import os; os.environ.update(INSITU_NB_EPOCHS='3', INSITU_NB_WORKERS='2', INSITU_NB_SLICES='2')"
    results = ws.run_notebook(f"examples/{name}", prelude=prelude)
    errors = [r["error"] for r in results if r["error"]]
    assert not errors, errors[0]
    out = stack["homes"] / "alice" / "lung" / "examples" / "results" / (name.rsplit(".", 1)[0] + ".json")
    assert json.loads(out.read_text())  # the notebook's own results, written in the home
    # each example prints where its dataset library comes from: the workspace's, not a checkout
    assert "dataset library: /opt/insitu/python/insitu_workspace/datasets.py" in "".join(r["text"] for r in results)


def test_settings_and_layout_are_kept_across_a_restart_and_user_config_cannot_lift_the_lockdown(stack, ws):
    r = ws.put(f"lab/api/settings/{THEME}", {"raw": json.dumps({"theme": "JupyterLab Dark"})})
    assert r.status_code == 204, r.text
    layout = {"data": {"layout-restorer:data": {"main": {"current": "notebook:examples/01-explore.ipynb"}}},
              "metadata": {"id": "default"}}
    r = ws.put("lab/api/workspaces/default", layout)
    assert r.status_code == 204, r.text
    # a kernel has run: ~/.ipython exists (jupyter_core's config migration then writes a marker at start)
    # the researcher tries to switch the lock-down off with a configuration file of their own
    ws.exec(
        "import os, json\nassert os.path.isdir(os.path.expanduser('~/.ipython'))\n"
        "d = os.path.expanduser('~/.jupyter'); os.makedirs(d, exist_ok=True)\n"
        "off = {'ServerApp': {'jpserver_extensions': {'insitu_workspace': False}}}\n"
        "json.dump(off, open(d + '/jupyter_server_config.json', 'w'))\n"
        "open(d + '/jupyter_server_config.py', 'w').write("
        "'c.ServerApp.jpserver_extensions = {\"insitu_workspace\": False}\\n')\n")
    stop(stack)
    ws2 = start(stack)  # the second start
    assert ws2.get("api/status").status_code == 200
    theme = ws2.get(f"lab/api/settings/{THEME}").json()
    assert json.loads(theme["raw"])["theme"] == "JupyterLab Dark"
    saved = ws2.get("lab/api/workspaces/default").json()
    assert saved["data"]["layout-restorer:data"]["main"]["current"] == "notebook:examples/01-explore.ipynb"
    assert os.path.exists(stack["homes"] / "alice" / "lung" / ".jupyter" / "migrated")
    for p in ("files/examples/01-explore.ipynb", "api/contents/examples/01-explore.ipynb?download=1"):
        assert ws2.get(p).status_code == 403, p


def test_terminal_python_and_pip_are_the_workspace_environment(stack, ws):
    out = ws.terminal(
        "command -v python pip insitu-export; "
        "python -c 'import torch, monai, pydicom, numpy, pandas, sklearn, matplotlib, nibabel; "
        "print(\"STACK\", torch.__version__)'; pip list 2>/dev/null | grep -iE '^(torch|monai|pandas) '")
    lines = out.splitlines()
    env_bin = str(REPO / ".venv-workspace" / "bin")
    assert f"{env_bin}/python" in lines and f"{env_bin}/pip" in lines, out
    assert "/opt/insitu/python/insitu_workspace/bin/insitu-export" in lines, out
    assert "STACK 2.13.0" in out, out
    assert any(line.split()[:2] == ["torch", "2.13.0"] for line in lines), out
    assert any(line.startswith("monai ") for line in lines) and any(line.startswith("pandas ") for line in lines)


def test_pip_installs_from_the_curated_index_only_and_every_install_is_recorded_by_the_hub(stack, ws):
    out = ws.terminal("pip install insitu-demo-extra 2>&1 | tail -1; "
                      "python -c 'import insitu_demo_extra as m; print(\"EXTRA\", m.VERSION)'; "
                      "pip install --retries 0 --timeout 5 xgboost 2>&1 | tail -1", timeout=180)
    assert "Successfully installed insitu-demo-extra-1.2.0" in out, out
    assert "EXTRA 1.2.0" in out, out
    assert "No matching distribution found for xgboost" in out, out  # not curated: nothing from outside
    # kernels see the researcher's packages too
    assert "1.2.0" in ws.exec("import insitu_demo_extra; print(insitu_demo_extra.VERSION)")
    records = [json.loads(line) for line in stack["audit"].read_text().splitlines()]
    assert [(r["user"], r["package"], r["version"]) for r in records] == [("alice", "insitu-demo-extra", "1.2.0")]


def test_the_package_index_is_still_served_after_a_hub_restart(stack, ws):
    """The workspace keeps running while the hub restarts (cleanup_servers off); the hub that comes back
    serves its curated index on the same socket again, and still records every install."""
    stack["hub"].stop()
    hub = stack["hub"] = stack["restart"]()
    wait_ready(hub, "alice", timeout=60)
    again = Workspace(hub.url + "/user/alice/", hub.token_for("alice"))
    out = again.terminal("pip install --no-cache-dir --force-reinstall --no-deps insitu-demo-extra 2>&1 | tail -1", timeout=180)
    assert "Successfully installed insitu-demo-extra-1.2.0" in out, (out, hub.log()[-3000:])
    records = [json.loads(line) for line in stack["audit"].read_text().splitlines()]
    assert [(r["user"], r["package"]) for r in records][-1] == ("alice", "insitu-demo-extra") and len(records) >= 2


def test_the_checkout_stays_clean(stack, ws):
    """Nothing the workspace ran wrote into the source tree (config marker, checkpoints, lock files)."""
    assert not (REPO / "hub" / "workspace" / "etc" / "jupyter" / "migrated").exists()
    # new untracked or ignored files where the workspace and the benchmarks run things, and any change
    # of the npm lock (tracked sources are edited by people; files written by running code are new files)
    new = sorted(set(git_status(WATCHED)) - set(stack["before"]))
    assert [e for e in new if written_by_running(e)] == []


def written_by_running(entry: str) -> bool:
    code, path = entry[:2], entry[3:]
    # (new source files are people's edits in a shared working tree, not something a run wrote)
    source = path.endswith((".py", ".js", ".html", ".css", ".md", ".sh"))
    return (code == "!!" or path.startswith("package")
            or (code == "??" and not source and path.startswith(("hub/workspace/", "notebooks/", "bench/"))))
