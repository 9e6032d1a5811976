"""Run a generated workspace Pod manifest for real with `podman kube play`.

The manifest comes from InsituKubeSpawner (the same code path as the golden
tests). Podman executes its securityContext (uid, primary group,
supplementalGroups, no capabilities, no escalation, seccomp RuntimeDefault,
read-only root file system) and its read-only volume mounts; from inside the
pod a probe checks that only the studies of the chosen dataset are readable,
through the dataset's symlinks and through the lake path, also at its readable
path (``/mnt/datasets/by-name/...``: the same folder mounted a second time), and
that the lake, the datasets, their readable paths and the root file system cannot
be written, removed or replaced.

What differs from a cluster, and why:
* the image is a tiny probe image imported from host binaries (no registry is
  reachable), and the container command is the probe;
* each claim is a folder of this test. Podman 4.3's `kube play` ignores
  `subPath` and its named volumes for claims proved unreliable (bind options
  not applied, volumes chowned to the container user), so every mount of a
  claim becomes a `hostPath` volume on ``<claim folder>/<subPath>`` (what the
  kubelet does with a subPath), keeping the mount's `readOnly`;
* `--network none`: the pod has no network at all.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hub.kube import InsituKubeSpawner, pod_manifest_dict
from hub.plan import GrantedDataset, PlanSettings, build_plan

from .test_kube_spawner import MockUser, dummy_kubeconfig  # noqa: F401  (fixture)

pytestmark = pytest.mark.sandbox

PROBE_BINS = ["dash", "cat", "ls", "id", "touch", "rm", "mv", "ln"]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "podman kube play with bind-mounted volumes and ACLs needs root here"
    for tool in ("podman", "runc", "setfacl", "ldd"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/apt-packages.txt)"
    return None


@pytest.fixture
def podman(tmp_path):
    why = _why_not()
    if why:
        pytest.skip(why)
    conf = tmp_path / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    short = Path(tempfile.mkdtemp(prefix="isp-", dir="/tmp"))  # podman wants a runroot under 50 characters
    base = ["podman", "--root", str(short / "store"), "--runroot", str(short / "run"), "--storage-driver", "vfs"]

    def run(*args, check=True, input=None):
        proc = subprocess.run(base + list(args), env=env, capture_output=True, text=True, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    run.base = base
    run.env = env
    yield run
    run("pod", "rm", "-af", "-t", "0", check=False)
    run("volume", "prune", "-f", check=False)
    subprocess.run(base + ["system", "reset", "-f"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(short, ignore_errors=True)


def _probe_image(podman, tmp_path) -> str:
    root = tmp_path / "rootfs"
    for d in ("bin", "etc", "tmp", "mnt", "home/jovyan"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for b in PROBE_BINS:
        src = shutil.which(b)
        shutil.copy2(src, root / "bin" / b)
        for lib in subprocess.run(["ldd", src], capture_output=True, text=True).stdout.split():
            if lib.startswith("/") and Path(lib).exists():
                dst = root / lib.lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.exists():
                    shutil.copy2(lib, dst)
    (root / "bin" / "sh").symlink_to("dash")
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
    ref = "localhost/insitu-probe:test"
    proc = subprocess.run(
        podman.base + ["import", "--change", "ENV PATH=/bin", "-", ref],
        input=tar, capture_output=True, env=podman.env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return ref


STUDIES = {
    # study folder -> dataset gid holding it (None: in no dataset)
    "subj1/studyA": 3001,
    "subj2/studyB": 3002,
    "subj3/studyC": None,
}


def _lake(tmp_path, uid) -> dict[str, Path]:
    data = tmp_path / "data"
    lake, datasets, homes = data / "lake", data / "datasets", data / "homes"
    for study, gid in STUDIES.items():
        d = lake / study / "series1"
        d.mkdir(parents=True)
        (d / "1.dcm").write_text(f"DICM {study}\n")
    for ds, gid in (("ds-a", 3001), ("ds-b", 3002)):
        for study, g in STUDIES.items():
            if g == gid:
                link = datasets / ds / study
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(f"/mnt/datalake/{study}")
    (homes / "alice" / "lung1").mkdir(parents=True)  # one home per user and project (hub/kube.py)
    return {"insitu-lake": lake, "insitu-datasets": datasets, "insitu-homes": homes, "_data": data}


def _set_permissions(paths, uid):
    lake = paths["insitu-lake"]
    subprocess.run(["chown", "-R", "root:root", str(paths["_data"])], check=True)
    os.chmod(paths["_data"], 0o755)
    for p in (paths["insitu-datasets"], paths["insitu-homes"]):
        os.chmod(p, 0o755)
    os.chmod(lake, 0o711)
    for study, gid in STUDIES.items():
        subj = lake / study.split("/")[0]
        os.chmod(subj, 0o711)
        for dirpath, dirnames, filenames in os.walk(lake / study):
            os.chmod(dirpath, 0o750)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o640)
        if gid is not None:
            subprocess.run(["setfacl", "-R", "-m", f"g:{gid}:rX", str(lake / study)], check=True)
    os.chown(paths["insitu-homes"] / "alice", 0, 0)
    os.chmod(paths["insitu-homes"] / "alice", 0o755)
    os.chown(paths["insitu-homes"] / "alice" / "lung1", uid, 100)


PROBE = r"""
check() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "RESULT $name ok"; else echo "RESULT $name denied"; fi; }
echo "ID $(id)"
check read-granted-via-dataset cat /mnt/datasets/ds-a/subj1/studyA/series1/1.dcm
check read-granted-via-lake cat /mnt/datalake/subj1/studyA/series1/1.dcm
check read-other-dataset-study cat /mnt/datalake/subj2/studyB/series1/1.dcm
check read-undatasetted-study cat /mnt/datalake/subj3/studyC/series1/1.dcm
check list-lake ls /mnt/datalake
check list-other-study ls /mnt/datalake/subj2/studyB
check other-dataset-folder ls /mnt/datasets/ds-b
check write-lake touch /mnt/datalake/x
check write-study touch /mnt/datalake/subj1/studyA/x
check write-dataset touch /mnt/datasets/ds-a/x
check write-root touch /etc/x
check write-home touch /home/jovyan/result.txt
check read-granted-by-name cat /mnt/datasets/by-name/lung-ct-v1/subj1/studyA/series1/1.dcm
check write-by-name touch /mnt/datasets/by-name/lung-ct-v1/x
check add-a-name touch /mnt/datasets/by-name/mine
check rm-by-name rm -rf /mnt/datasets/by-name/lung-ct-v1
check mv-by-name mv /mnt/datasets/by-name/lung-ct-v1 /home/jovyan/moved
check ln-over-by-name ln -sfn /home/jovyan /mnt/datasets/by-name/lung-ct-v1
check read-by-name-after cat /mnt/datasets/by-name/lung-ct-v1/subj1/studyA/series1/1.dcm
"""


def _podman_manifest(manifest: dict, paths: dict, image: str, podman) -> dict:
    """The generated pod, adapted to podman as described in the module doc."""
    pod = copy.deepcopy(manifest)
    pod["metadata"] = {"name": "ws", "labels": manifest["metadata"]["labels"], "annotations": manifest["metadata"]["annotations"]}
    spec = pod["spec"]
    spec["restartPolicy"] = "Never"
    spec.pop("imagePullSecrets", None)
    claims = {v["name"]: v["persistentVolumeClaim"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    # the gateway sidecar (hub/kube_gateway.py) is not what this test runs: the notebook container's file access
    spec["containers"] = [x for x in spec["containers"] if x["name"] != "gateway"]
    (c,) = spec["containers"]
    c["image"] = image
    c["command"] = ["/bin/sh", "-c", "; ".join(line for line in PROBE.strip().splitlines())]  # one line: podman 4.3 mangles multi-line strings
    c.pop("args", None)
    c.pop("resources", None)
    c.pop("ports", None)
    new_mounts, vols = [], [v for v in spec["volumes"] if "persistentVolumeClaim" not in v]
    for i, m in enumerate(c["volumeMounts"]):
        if m["name"] in claims:
            claim = claims[m["name"]]
            folder = paths[claim["claimName"]] / m.get("subPath", "")
            name = f"{m['name']}-{i}"
            vols.append({"name": name, "hostPath": {"path": str(folder), "type": "Directory"}})
            m = {k: v for k, v in m.items() if k != "subPath"} | {"name": name}
            # a read-only claim stays read-only at every mount
            if claim.get("readOnly"):
                assert m.get("readOnly") is True, m
        new_mounts.append(m)
    c["volumeMounts"] = new_mounts
    spec["volumes"] = vols
    return pod


@pytest.mark.timeout(240)
async def test_generated_pod_runs_with_only_granted_studies_readable(podman, tmp_path):
    image = _probe_image(podman, tmp_path)

    settings = PlanSettings(datasets_dir="/unused")
    granted = [GrantedDataset("ds-a", 3001, project="lung1", name="Lung CT", version="1"),
               GrantedDataset("ds-b", 3002, project="lung1")]
    plan = build_plan("alice", "lung1", granted, ["ds-a"], "notebook-cpu", settings, session_id="s-1")
    sp = InsituKubeSpawner(_mock=True, user=MockUser("alice"), namespace="insitu-workspaces")
    sp.apply_plan(plan)
    manifest = pod_manifest_dict(await sp.get_pod_manifest())  # pre-flight checked
    assert manifest["spec"]["securityContext"]["supplementalGroups"] == [3001]

    paths = _lake(tmp_path, plan.uid)
    pod = _podman_manifest(manifest, paths, image, podman)
    _set_permissions(paths, plan.uid)

    (tmp_path / "pod.yaml").write_text(json.dumps(pod))  # one-line JSON is YAML; podman 4.3 misparses some PyYAML output
    podman("kube", "play", "--network", "none", str(tmp_path / "pod.yaml"))
    podman("wait", "ws-notebook")
    out = podman("logs", "ws-notebook").stdout + podman("logs", "ws-notebook").stderr
    podman("kube", "down", str(tmp_path / "pod.yaml"), check=False)

    results = dict(line.split()[1:3] for line in out.splitlines() if line.startswith("RESULT "))
    ids = next(line for line in out.splitlines() if line.startswith("ID "))
    assert f"uid={plan.uid}" in ids and "gid=100" in ids and "3001" in ids and "3002" not in ids, ids
    assert results == {
        "read-granted-via-dataset": "ok",
        "read-granted-via-lake": "ok",
        "read-other-dataset-study": "denied",
        "read-undatasetted-study": "denied",
        "list-lake": "denied",
        "list-other-study": "denied",
        "other-dataset-folder": "denied",
        "write-lake": "denied",
        "write-study": "denied",
        "write-dataset": "denied",
        "write-root": "denied",
        "write-home": "ok",
        "read-granted-by-name": "ok",
        "write-by-name": "denied",
        "add-a-name": "denied",
        "rm-by-name": "denied",
        "mv-by-name": "denied",
        "ln-over-by-name": "denied",
        "read-by-name-after": "ok",
    }, out
    assert (paths["insitu-homes"] / "alice" / "lung1" / "result.txt").stat().st_uid == plan.uid
