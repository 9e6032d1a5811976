"""What a workspace shows of its datasets (hub/workspace/granted.py, the JupyterLab Datasets panel's data):
names, versions and counts from the manifests the real builder wrote, the grant of each from the
session's environment. The oracle is the lake (walked here) and the builder's catalogue."""
from __future__ import annotations

import datetime as dt
import json
import sqlite3

from hub.workspace.datasets import open_dataset
from hub.workspace.granted import describe, main, workspace_datasets
from nb_demo import build_dataset, demo_dataset

NOW = dt.datetime(2027, 1, 5, 12, 0, tzinfo=dt.timezone.utc)


def test_names_counts_folders_and_grants_of_the_session(tmp_path):
    lake, full = demo_dataset(tmp_path, 3, 11, slices=4, size=16)
    (first,) = sqlite3.connect(tmp_path / "catalogue.sqlite").execute("select min(id) from studies").fetchone()
    subset = build_dataset(lake, tmp_path / "datasets", tmp_path / "catalogue.sqlite", name="Lung CT subset",
                           study_ids=[first])
    lake_studies = [s for subject in lake.iterdir() if subject.is_dir() for s in subject.iterdir() if s.is_dir()]
    env = {
        "INSITU_DATASETS_MOUNT": str(tmp_path / "datasets"), "INSITU_PROJECT": "lung", "INSITU_SESSION_ID": "s-1",
        # the session's order: the subset first; a third dataset of the session is not mounted
        "INSITU_DATASETS": f"{subset.name},{full.name},ds-gone",
        "INSITU_GRANTS": json.dumps({
            subset.name: {"grant_id": "7", "expires_at": "2027-03-31T00:00:00+00:00", "name": "SERVICE NAME"},
            full.name: {"grant_id": "9", "expires_at": "2027-01-15T12:00:00+00:00"},
        }),
        # the readable folders the spawner made (as the sandbox does: a symlink to ../<id>); the whole
        # dataset's names a folder that is not the dataset's own, which is not shown
        "INSITU_DATASETS_BY_NAME": json.dumps({subset.name: str(tmp_path / "datasets/by-name/lung-ct-subset-v1"),
                                               full.name: str(tmp_path / "datasets/by-name/demo-v1")}),
    }
    (tmp_path / "datasets/by-name").mkdir()
    (tmp_path / "datasets/by-name/lung-ct-subset-v1").symlink_to(f"../{subset.name}")
    (tmp_path / "datasets/by-name/demo-v1").symlink_to(f"../{subset.name}")
    got = workspace_datasets(env, now=NOW)
    assert (got["project"], got["session_id"], got["mount"]) == ("lung", "s-1", str(tmp_path / "datasets"))
    rows = got["datasets"]
    assert [r["dataset_id"] for r in rows] == [subset.name, full.name, "ds-gone"]
    sub, whole, gone = rows
    # the manifest's name wins over the session's (the dataset's own, sealed with it)
    assert (sub["name"], sub["version"]) == ("Lung CT subset", "1")
    assert whole["name"] == json.loads((full / "manifest.json").read_text())["name"] == "demo"
    assert (sub["n_studies"], sub["n_subjects"]) == (1, 1)
    assert whole["n_studies"] == len(lake_studies) and whole["n_subjects"] == 3
    assert sub["path"] == str(subset) and whole["path"] == str(full)
    assert sub["name_path"] == str(tmp_path / "datasets/by-name/lung-ct-subset-v1") and whole["name_path"] == ""
    # the library opens it by its readable name or folder as by its id: the same dataset, intact
    for ref in ("lung-ct-subset-v1", sub["name_path"], subset.name):
        ds = open_dataset(ref, mount=tmp_path / "datasets")
        assert ds.dataset_id == subset.name and ds.name == "Lung CT subset" and ds.verify().ok, ref
    assert (sub["grant_id"], sub["expires_text"], sub["days_left"]) == ("7", "31 March 2027, 00:00 UTC", 84)
    assert (whole["grant_id"], whole["expires_text"], whole["days_left"]) == ("9", "15 January 2027, 12:00 UTC", 10)
    assert sub["project"] == whole["project"] == "lung" and not sub["problem"] and not whole["problem"]
    assert gone["problem"] and gone["path"] == str(tmp_path / "datasets" / "ds-gone") and "n_studies" not in gone

    # the same in a terminal (insitu-datasets)
    text = describe(got).splitlines()
    assert text[0] == "Project lung: 3 datasets, read-only."
    i = text.index("Lung CT subset v1")
    assert text[i + 1:i + 6] == [f"  id        {subset.name}", f"  folder    {sub['name_path']}", f"  same as   {subset}",
                                 f"  contents  1 subject, 1 study, {sub['n_series']} series, {sub['n_files']} files",
                                 "  access    project lung, grant 7, until 31 March 2027, 00:00 UTC (84 days left)"]
    assert "  problem   not mounted or not readable in this workspace" in text
    i = text.index("demo v1")
    assert text[i + 2] == f"  folder    {full}" and "same as" not in text[i + 3]


def test_without_grants_in_the_environment_names_still_come_from_the_manifests(tmp_path):
    lake, full = demo_dataset(tmp_path, 2, 3, slices=4, size=16)
    for grants in (None, "not json", "[1, 2]"):
        env = {"INSITU_DATASETS_MOUNT": str(tmp_path / "datasets"), "INSITU_DATASETS": full.name}
        if grants is not None:
            env["INSITU_GRANTS"] = grants
        (row,) = workspace_datasets(env, now=NOW)["datasets"]
        assert row["name"] == "demo" and row["version"] == "1" and row["n_subjects"] == 2
        assert (row["grant_id"], row["expires_at"], row["expires_text"], row["days_left"]) == ("", "", "", None)


def test_the_terminal_command(tmp_path, monkeypatch, capsys):
    lake, full = demo_dataset(tmp_path, 2, 3, slices=4, size=16)
    monkeypatch.setenv("INSITU_DATASETS_MOUNT", str(tmp_path / "datasets"))
    monkeypatch.setenv("INSITU_DATASETS", full.name)
    monkeypatch.setenv("INSITU_PROJECT", "lung")
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Project lung: 1 dataset, read-only.") and f"\ndemo v1\n  id        {full.name}\n" in out
    assert main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"][0]["name"] == "demo"
    assert main(["--bogus"]) == 2 and "usage: insitu-datasets" in capsys.readouterr().err
