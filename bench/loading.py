"""Benchmark: loading a dataset's DICOM series with MONAI, on the host and inside a workspace sandbox.

    .venv/bin/python bench/loading.py [--quick] [--subjects N] [--slices S] [--size P] [--rounds R]
                                      [--workers W] [--no-workspace]

Writes a demo lake (default 40 subjects of 48 × 128 × 128 volumes; --quick: 10 subjects of
24 × 64 × 64) and builds, with the real builder, two datasets of all its studies: one whose study
links point at the lake's real folder (read on the host) and one whose links point at
``/mnt/datalake``, as every dataset a workspace mounts. Then, in the same run:

**Readers on the host** (this process): in rounds, each volume loaded by each mode back to back (the
order rotating; per mode the median of the rounds' totals, paired ratios the median of per-round ratios):

1. ``library``: the workspace library's MONAI path, ``LoadImage(reader=SeriesReader())``
   (``hub/workspace/monai_reader.py``) of every series folder of ``Dataset.items()``, through the
   dataset tree;
2. ``monai-dataset``: MONAI's own ``LoadImage(reader="PydicomReader")`` of the same folders;
3. ``monai-direct``: that loader on the same series folders in the lake itself;
4. ``pydicom``: a plain loop — ``dcmread`` of each file the manifest lists, sorted by
   ``InstanceNumber``, rescaled and stacked with numpy (through the dataset tree).

**A DataLoader with workers, host against workspace** (needs root, bubblewrap and
``.venv-workspace``): the same code (``--dataloader-child``, this file) runs twice at once with the
workspace environment's Python: a PyTorch ``DataLoader(num_workers=W)`` (default 2) over
``monai.data.Dataset(items, LoadImaged(reader=SeriesReader()))`` of the library's items:

* ``host``: a plain process as root, the library on ``PYTHONPATH``, the host dataset;
* ``workspace``: inside the sandbox the hub's spawner makes (``hub.sandbox.sandbox_argv`` of a
  ``hub.plan`` plan for the notebook-cpu profile: bubblewrap + setpriv as the plan's uid with exactly
  the dataset's gid, the lake read-only at ``/mnt/datalake`` checked by its ACLs, the dataset at
  ``/mnt/datasets/<id>``, the seccomp filter, ``/tmp`` and ``/dev/shm`` of the profile's sizes, the
  profile's cgroup limits), opening the dataset as a workspace does (``open_dataset()``: the only
  one mounted).

Both first run an untimed epoch (page cache, worker start); then the parent asks each for one epoch at
a time, alternately (the order rotating), so both see the same load on the machine; the ratio is
the median of the per-round ratios host/workspace.

Every mode loads the same volumes (checked: same shapes, same sums). Last line: volumes/s of each
and the ratios. Goals: library ≥ 1.0 of the pydicom loop, monai-dataset ≥ 0.95 of monai-direct,
workspace ≥ 0.95 of host.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WS = REPO / ".venv-workspace"
BENCH_IN_SANDBOX = "/opt/insitu/bench/loading.py"


# --------------------------------------------------------------------------- the DataLoader child

def dataloader_child(dataset: str | None, workers: int, batch: int) -> None:
    """Serve epochs of a DataLoader over the library's items: one JSON line per ``epoch`` line read."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.transforms import LoadImaged

    try:  # inside a workspace the library is the package insitu_workspace
        from insitu_workspace.datasets import open_dataset
        from insitu_workspace.monai_reader import SeriesReader
    except ImportError:  # the host run: the same folders on PYTHONPATH
        sys.exit("the workspace library (insitu_workspace) is not importable")

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    ds = open_dataset(dataset)
    items = [{"image": it["image"], "series_id": it["series_id"]} for it in ds.items()]
    loader = DataLoader(Dataset(items, LoadImaged(keys="image", reader=SeriesReader(), image_only=True)),
                        batch_size=batch, num_workers=workers, persistent_workers=workers > 0)

    def epoch() -> dict:
        t, total, n = time.perf_counter(), 0.0, 0
        for b in loader:
            total += float(b["image"].double().sum())
            n += len(b["image"])
        return {"seconds": time.perf_counter() - t, "sum": total, "volumes": n}

    first = epoch()  # untimed: page cache, workers started
    print(json.dumps({**first, "root": str(ds.root), "uid": os.getuid(), "groups": sorted(os.getgroups())}),
          flush=True)
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        print(json.dumps(epoch()), flush=True)


# --------------------------------------------------------------------------- set-up

def build(d: Path, subjects: int, slices: int, size: int) -> tuple[Path, Path, Path, int]:
    """(lake, host dataset, workspace dataset, workspace dataset's gid)."""
    import sqlite3

    from dataset_service import builder
    from dataset_service.db import Database
    from dataset_service.demo_lake import write_lake
    from dataset_service.indexer import index_lake
    from dataset_service.settings import Settings

    lake = d / "lake"
    write_lake(lake, subjects, seed=3, slices=slices, size=size, workers=0)
    out = []
    for mount in (os.path.realpath(lake), "/mnt/datalake"):
        settings = Settings(lake_dir=lake, datasets_dir=d / "datasets", database_url=f"sqlite:///{d / 'db.sqlite'}",
                            lake_mount_path=mount, gid_min=991000, gid_max=991099, tracer_url="")
        db = Database(settings.database_url)
        db.upgrade()
        if not out:
            index_lake(settings, db, progress=False)
        dataset_id = builder.create_dataset(settings, db, actor="bench", name="bench", all_studies=True)
        state = builder.build(settings, db, dataset_id)
        db.dispose()
        if state != "draft":
            raise SystemExit(f"build ended {state}")
        out.append(d / "datasets" / dataset_id)
    with sqlite3.connect(d / "db.sqlite") as db:
        (gid,) = db.execute("select gid from datasets where id = ?", (out[1].name,)).fetchone()
    return lake, out[0], out[1], gid


def workspace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("bwrap"):
        return "no bubblewrap"
    if not (WS / "bin" / "python").exists():
        return "no .venv-workspace"
    return None


# --------------------------------------------------------------------------- host readers

def time_readers(lake: Path, root: Path, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]], int, str]:
    import numpy as np
    import pydicom
    import torch
    from monai.transforms import LoadImage

    from hub.workspace.datasets import open_dataset
    from hub.workspace.monai_reader import SeriesReader

    torch.set_num_threads(1)
    ds = open_dataset(root)
    items = ds.items()
    series = {s.series_id: s for s in ds.series}
    assert all(os.path.islink(root / it["study_id"]) for it in items)
    monai, library = LoadImage(reader="PydicomReader", image_only=True), LoadImage(reader=SeriesReader(), image_only=True)

    def pydicom_load(series_id):
        dss = sorted((pydicom.dcmread(ds.path(f.path)) for f in series[series_id].files),
                     key=lambda x: int(x.InstanceNumber))
        return np.stack([x.pixel_array.astype(np.float32) * float(getattr(x, "RescaleSlope", 1))
                         + float(getattr(x, "RescaleIntercept", 0)) for x in dss])

    # one volume = one call per mode; per volume the modes run back to back (order rotating), so
    # load on the machine drifts over all of them alike
    modes = {"library": (library, [it["image"] for it in items]),
             "monai-dataset": (monai, [it["image"] for it in items]),
             "monai-direct": (monai, [str(lake / it["series_id"]) for it in items]),
             "pydicom": (pydicom_load, [it["series_id"] for it in items])}
    # untimed pass: page cache, imports, and the check that all modes load the same volumes
    sums = {}
    for m, (fn, args) in modes.items():
        vols = [np.asarray(fn(x)) for x in args]
        sums[m] = [float(v.astype(np.float64).sum()) for v in vols]
        if m == "library":
            shape = vols[0].shape
        assert sorted(v.size for v in vols) == [int(np.prod(shape))] * len(vols), f"{m}: other shapes"
    for m in modes:
        assert np.allclose(sums[m], sums["library"]), f"{m} loaded other volumes than the library"
    lib_img, ref_img = library(modes["library"][1][0]), monai(modes["library"][1][0])
    assert np.array_equal(np.asarray(lib_img.affine), np.asarray(ref_img.affine)), "the library's affine differs"
    times: dict[str, list[float]] = {m: [] for m in modes}
    order = list(modes)
    clock = time.perf_counter
    for r in range(rounds):
        acc = dict.fromkeys(modes, 0.0)
        for i in range(len(items)):
            k = (r + i) % len(order)
            for m in order[k:] + order[:k]:
                fn, args = modes[m]
                t = clock()
                fn(args[i])
                acc[m] += clock() - t
        for m in modes:
            times[m].append(acc[m])
    return times, {"library": sums["library"]}, len(items), "x".join(map(str, shape))


# --------------------------------------------------------------------------- host vs workspace

class Child:
    """A ``--dataloader-child`` process; ``epoch()`` asks it for one timed epoch."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()):
        self.name = name
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, pass_fds=pass_fds, start_new_session=True)
        self.first: dict | None = None

    def _line(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise SystemExit(f"{self.name} child ended ({self.proc.returncode}): {self.proc.stderr.read()[-3000:]}")
        return json.loads(line)

    def ready(self) -> dict:
        self.first = self._line()
        return self.first

    def epoch(self) -> dict:
        self.proc.stdin.write("epoch\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


def child_args(workers: int, batch: int) -> list[str]:
    return ["--dataloader-child", "--workers", str(workers), "--batch", str(batch)]


def host_child(tmp: Path, dataset: Path, workers: int, batch: int) -> Child:
    """The DataLoader on the host: the workspace environment's Python, the library on PYTHONPATH."""
    py = tmp / "host-python"
    py.mkdir()
    os.symlink(REPO / "hub" / "workspace", py / "insitu_workspace")
    os.symlink(REPO / "insitu", py / "insitu")
    env = {"PATH": f"{WS}/bin:/usr/bin:/bin", "PYTHONPATH": str(py), "PYTHONNOUSERSITE": "1", "LANG": "C.UTF-8",
           "HOME": str(tmp), "TMPDIR": str(tmp), "CUDA_VISIBLE_DEVICES": ""}
    return Child("host", [f"{WS}/bin/python", str(REPO / "bench" / "loading.py"), *child_args(workers, batch),
                          "--dataset", str(dataset)], env)


class WorkspaceSandbox:
    """What ``LocalSandboxSpawner`` prepares for a notebook-cpu workspace holding one dataset, running the
    DataLoader child instead of the notebook server (no hub, gateway or package index: nothing here talks)."""

    def __init__(self, tmp: Path, lake: Path, dataset: Path, gid: int, without: frozenset[str] = frozenset()):
        from hub import limits, sandbox_fs, sandbox_workspace
        from hub.plan import PlanSettings, build_plan
        try:  # the sandbox's pure description (hub/sandbox_spec.py, once split out of hub/sandbox.py)
            from hub.sandbox_spec import passwd_lines, sandbox_argv, sandbox_env
        except ImportError:
            from hub.sandbox import passwd_lines, sandbox_argv, sandbox_env
        from hub.seccomp import filter_bytes

        self.tmp, self.lake, self.dataset, self.gid = tmp, lake, dataset, gid
        self._argv, self._env, self._sandbox_fs, self._sw = sandbox_argv, sandbox_env, sandbox_fs, sandbox_workspace
        settings = PlanSettings(lake_dir=str(lake), datasets_dir=str(dataset.parent), home_root=str(tmp / "homes"))
        self.plan = build_plan("bench", "lung", [{"dataset_id": dataset.name, "gid": gid}], [dataset.name],
                               "notebook-cpu", settings, session_id="bench")
        p = self.plan
        sandbox_fs.prepare_home(settings.home_root, p.user, p.project, p.uid, p.gid)
        pw, gr = passwd_lines(p)
        self.runtime = sandbox_fs.prepare_runtime(str(tmp / "run"), p.uid, p.gid, {
            "passwd": pw, "group": gr, "hosts": "127.0.0.1 localhost workspace\n"})
        self.seccomp_fd = None if "seccomp" in without else os.memfd_create("insitu-seccomp")
        if self.seccomp_fd is not None:
            os.write(self.seccomp_fd, filter_bytes())
            os.lseek(self.seccomp_fd, 0, os.SEEK_SET)
        self.cgroup, self.limits = None, "none"
        self._wrap = lambda argv: argv
        try:
            if "limits" in without:
                raise LookupError("left out (--without limits)")
            cg = limits.WorkspaceCgroup(os.path.basename(self.runtime))
            r = p.resources
            cg.create(limits.plan_values(r.mem_limit, r.cpu_limit, r.cpu_guarantee, r.pids_limit))
            self.cgroup, self.limits = cg, f"cgroup v1 ({r.cpu_limit:g} cpus, {r.mem_limit >> 30} GiB)"
            self._wrap = lambda argv: limits.wrap_argv(cg.procs_files(), argv)
        except (OSError, LookupError) as e:
            self.limits = f"none ({e})"

    def child(self, workers: int, batch: int) -> Child:
        p, sw = self.plan, self._sw
        command = [f"{WS}/bin/python", BENCH_IN_SANDBOX, *child_args(workers, batch)]  # open_dataset(): the one
        argv = self._argv(p, command, runtime_dir=self.runtime, workspace_env=str(WS),
                          workspace_code=str(REPO / "hub" / "workspace"),
                          workspace_etc=str(REPO / "hub" / "workspace" / "etc" / "jupyter"),
                          extra_ro_binds=((str(Path(__file__).resolve()), BENCH_IN_SANDBOX),) + sw.core_binds(),
                          shm_size=sw.shm_size_for(p.resources.mem_limit), tmp_size=p.resources.tmp_limit,
                          seccomp_fd=self.seccomp_fd)
        fds = () if self.seccomp_fd is None else (self.seccomp_fd,)
        return Child("workspace", self._wrap(argv), self._env(p, {}, str(WS)), pass_fds=fds)

    def throttled(self) -> str:
        """The CFS quota's effect so far: periods in which the workspace was throttled, and for how long."""
        if self.cgroup is None:
            return ""
        st = dict(line.split() for line in self.cgroup.read("cpu", "cpu.stat").splitlines() if line.strip())
        return (f", throttled in {st.get('nr_throttled', '?')} of {st.get('nr_periods', '?')} periods "
                f"({int(st.get('throttled_time', 0)) / 1e9:.2f} s)")

    def close(self) -> None:
        if self.seccomp_fd is not None:
            os.close(self.seccomp_fd)
        if self.cgroup is not None:
            self.cgroup.remove()
        self._sandbox_fs.remove_runtime(self.runtime)


def time_host_vs_workspace(tmp: Path, lake: Path, host_ds: Path, ws_ds: Path, gid: int, rounds: int,
                           workers: int, batch: int, without: frozenset[str]) -> tuple[dict[str, list[float]], dict, str]:
    sandbox = WorkspaceSandbox(tmp, lake, ws_ds, gid, without)
    children: list[Child] = []
    try:
        children = [host_child(tmp, host_ds, workers, batch), sandbox.child(workers, batch)]
        firsts = {c.name: c.ready() for c in children}  # both import and run their untimed epoch at once
        times: dict[str, list[float]] = {c.name: [] for c in children}
        for r in range(rounds):
            for c in children[r % 2:] + children[:r % 2]:
                out = c.epoch()
                if abs(out["sum"] - firsts[c.name]["sum"]) > 1e-6 * abs(out["sum"]):
                    raise SystemExit(f"{c.name}: an epoch loaded other volumes")
                times[c.name].append(out["seconds"])
        limits = sandbox.limits + sandbox.throttled()
    finally:
        for c in children:
            c.close()
        sandbox.close()
    return times, firsts, limits


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small lake, 3 rounds (under a minute)")
    ap.add_argument("--subjects", type=int)
    ap.add_argument("--slices", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    ap.add_argument("--batch", type=int, default=2, help="DataLoader batch size (default 2)")
    ap.add_argument("--no-workspace", action="store_true", help="only the readers on the host")
    ap.add_argument("--without", action="append", choices=["limits", "seccomp"], default=[],
                    help="leave this part out of the workspace sandbox, to see what it costs (repeatable)")
    ap.add_argument("--dataloader-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.dataloader_child:
        return dataloader_child(a.dataset, a.workers, a.batch)
    sys.path.insert(0, str(REPO))
    subjects = a.subjects or (10 if a.quick else 40)
    slices = a.slices or (24 if a.quick else 48)
    size = a.size or (64 if a.quick else 128)
    rounds = a.rounds or (3 if a.quick else 5)
    skip = "--no-workspace" if a.no_workspace else workspace_unavailable()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory(prefix="insitu-bench-loading-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        t = time.perf_counter()
        lake, host_ds, ws_ds, gid = build(tmp, subjects, slices, size)
        setup = time.perf_counter() - t
        times, sums, n, shape = time_readers(lake, host_ds, rounds)
        print(f"lake: {subjects} subjects, {n} series of {shape}; lake + index + 2 builds {setup:.1f} s; "
              f"{os.cpu_count()} cores; {rounds} rounds", flush=True)
        vps = {m: n / statistics.median(ts) for m, ts in times.items()}
        for m, ts in times.items():
            print(f"{m:>14}: median {statistics.median(ts):.3f} s per pass of {n} (min {min(ts):.3f}, "
                  f"max {max(ts):.3f}) = {vps[m]:.1f} volumes/s", flush=True)

        def paired(a_: str, b_: str, src=times) -> float:  # b's time / a's time, per round: a's speed relative to b
            return statistics.median(tb / ta for ta, tb in zip(src[a_], src[b_]))

        result = (f"RESULT volumes={n} library_vps={vps['library']:.1f} monai_dataset_vps={vps['monai-dataset']:.1f} "
                  f"monai_direct_vps={vps['monai-direct']:.1f} pydicom_vps={vps['pydicom']:.1f} "
                  f"ratio_library_vs_pydicom={paired('library', 'pydicom'):.2f} (goal >= 1.0) "
                  f"ratio_monai_dataset_vs_pydicom={paired('monai-dataset', 'pydicom'):.2f} "
                  f"ratio_dataset_vs_direct={paired('monai-dataset', 'monai-direct'):.3f} (goal >= 0.95)")
        if skip:
            print(f"host vs workspace: not measured ({skip})")
            print(result + f" workspace=skipped ({skip})")
            return
        t, load0 = time.perf_counter(), os.getloadavg()[0]
        wtimes, firsts, lim = time_host_vs_workspace(tmp, lake, host_ds, ws_ds, gid, rounds, a.workers, a.batch,
                                                   frozenset(a.without))
        ws = firsts["workspace"]
        print(f"DataLoader(num_workers={a.workers}, batch_size={a.batch}) over the library's items, "
              f".venv-workspace Python; workspace: uid {ws['uid']}, groups {ws['groups']}, {ws['root']}, "
              f"limits {lim}; {time.perf_counter() - t:.1f} s; load average {load0:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after", flush=True)
        total = sum(sums["library"])
        for name, f in firsts.items():
            if abs(f["sum"] - total) > 1e-5 * abs(total) or f["volumes"] != n:
                raise SystemExit(f"{name}: the DataLoader loaded other volumes than the readers")
        wvps = {k: n / statistics.median(ts) for k, ts in wtimes.items()}
        for k, ts in wtimes.items():
            print(f"{k:>14}: median {statistics.median(ts):.3f} s per epoch of {n} (min {min(ts):.3f}, "
                  f"max {max(ts):.3f}) = {wvps[k]:.1f} volumes/s", flush=True)
        print(result + f" dataloader_workers={a.workers} host_vps={wvps['host']:.1f} "
                       f"workspace_vps={wvps['workspace']:.1f} "
                       f"ratio_workspace_vs_host={paired('workspace', 'host', wtimes):.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
