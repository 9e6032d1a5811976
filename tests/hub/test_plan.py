"""Golden and refusal tests for the pure workspace plan (hub/plan.py).

Golden files: tests/hub/golden/plan_*.json hold {"input": ..., "expected": ...}.
Regenerate after an intended change with INSITU_UPDATE_GOLDEN=1 and review the diff.
"""

import json
import os
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from hub.plan import (
    GrantedDataset,
    PlanError,
    PlanSettings,
    Profile,
    Resources,
    build_plan,
    derive_uid,
    label_value,
    plan_from_session,
)

GOLDEN = Path(__file__).parent / "golden"


def settings_from(d: dict) -> PlanSettings:
    return PlanSettings(**d)


def golden_cases():
    return sorted(GOLDEN.glob("plan_*.json"))


@pytest.mark.parametrize("path", golden_cases(), ids=lambda p: p.stem)
def test_golden(path):
    case = json.loads(path.read_text())
    inp = case["input"]
    settings = settings_from(inp.get("settings", {}))
    if "session" in inp:
        plan = plan_from_session(inp["session"], inp["profile"], settings)
    else:
        plan = build_plan(
            inp["user"], inp["project"], inp["granted"], inp["chosen"], inp["profile"], settings,
            session_id=inp.get("session_id"),
        )
    got = json.loads(plan.to_json())
    if os.environ.get("INSITU_UPDATE_GOLDEN"):
        case["expected"] = got
        path.write_text(json.dumps(case, indent=2, sort_keys=True) + "\n")
    assert got == case["expected"]


def test_there_are_golden_cases():
    assert len(golden_cases()) >= 4


S = PlanSettings(lake_dir="/srv/lake", datasets_dir="/srv/datasets", home_root="/srv/homes")
GRANTED = [
    {"dataset_id": "ds-a", "gid": 70001, "project": "lung", "manifest_root": "aa" * 32},
    {"dataset_id": "ds-b", "gid": 70002, "project": "lung", "manifest_root": "bb" * 32},
    {"dataset_id": "ds-c", "gid": 70003, "project": "prostate", "manifest_root": "cc" * 32},
]


def plan(chosen=("ds-a",), profile="notebook-cpu", user="alice", project="lung", granted=GRANTED, settings=S):
    return build_plan(user, project, granted, list(chosen), profile, settings, session_id="sess-1")


def test_one_gid_and_one_readonly_mount_per_chosen_dataset():
    p = plan(chosen=["ds-b", "ds-a"])
    assert p.supplementary_gids == (70002, 70001)
    ds_mounts = [m for m in p.mounts if m.kind == "dataset"]
    assert [(m.source, m.target, m.read_only) for m in ds_mounts] == [
        ("/srv/datasets/ds-b", "/mnt/datasets/ds-b", True),
        ("/srv/datasets/ds-a", "/mnt/datasets/ds-a", True),
    ]
    assert [m for m in p.mounts if not m.read_only] == [p.home]
    assert p.home.source == "/srv/homes/alice/lung"  # one home per user and project
    lake = [m for m in p.mounts if m.kind == "lake"]
    assert lake and lake[0].read_only and lake[0].target == "/mnt/datalake"


def test_refuses_dataset_not_granted():
    with pytest.raises(PlanError) as e:
        plan(chosen=["ds-a", "ds-zzz"])
    assert e.value.reason == "not-granted" and "ds-zzz" in str(e.value)


def test_refuses_dataset_granted_to_another_project():
    with pytest.raises(PlanError) as e:
        plan(chosen=["ds-c"])
    assert e.value.reason == "not-granted"
    # but the same user may use it in the project that holds the grant
    assert plan(chosen=["ds-c"], project="prostate").supplementary_gids == (70003,)


def test_refuses_unknown_profile():
    with pytest.raises(PlanError) as e:
        plan(profile="notebook-tpu")
    assert e.value.reason == "unknown-profile"


def test_refuses_duplicates():
    with pytest.raises(PlanError) as e:
        plan(chosen=["ds-a", "ds-a"])
    assert e.value.reason == "duplicate-dataset"


def test_refuses_empty_choice_unless_allowed():
    with pytest.raises(PlanError):
        plan(chosen=[])
    p = plan(chosen=[], settings=replace(S, allow_no_datasets=True))
    assert p.supplementary_gids == () and [m.kind for m in p.mounts] == ["lake", "home"]


def test_refuses_a_string_as_choice():
    with pytest.raises(PlanError):
        build_plan("alice", "lung", GRANTED, "ds-a", "notebook-cpu", S)


@pytest.mark.parametrize("gid", [0, 6, 42, 999])
def test_refuses_system_gids(gid):
    granted = [{"dataset_id": "ds-a", "gid": gid}]
    with pytest.raises(PlanError) as e:
        plan(granted=granted)
    assert e.value.reason == "bad-gid"


def test_refuses_gid_collisions():
    granted = [{"dataset_id": "ds-a", "gid": 5000}, {"dataset_id": "ds-b", "gid": 5000}]
    with pytest.raises(PlanError):
        plan(chosen=["ds-a", "ds-b"], granted=granted)
    uid = derive_uid("alice", S)
    with pytest.raises(PlanError):
        plan(granted=[{"dataset_id": "ds-a", "gid": uid}])


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".", "..", "x" * 200, "a b"])
def test_refuses_unsafe_dataset_ids(bad):
    with pytest.raises(PlanError):
        plan(chosen=[bad], granted=[{"dataset_id": bad, "gid": 5000}])


@pytest.mark.parametrize("bad", ["../root", "a/b", "", "..", "x\n"])
def test_refuses_unsafe_user_and_project(bad):
    with pytest.raises(PlanError):
        plan(user=bad)
    with pytest.raises(PlanError):
        plan(project=bad)


def test_uid_is_deterministic_in_range_and_overridable():
    uids = {derive_uid(f"user{i}", S) for i in range(500)}
    assert all(S.uid_min <= u <= S.uid_max for u in uids)
    assert len(uids) > 490  # spread, not constant
    assert derive_uid("alice", S) == derive_uid("alice", replace(S))
    assert derive_uid("alice", S) != derive_uid("bob", S)
    s2 = replace(S, uid_map={"alice": 4242})
    assert plan(settings=s2).uid == 4242
    with pytest.raises(PlanError):
        plan(settings=replace(S, uid_map={"alice": 0}))


def test_settings_refuse_a_uid_range_reaching_system_ids():
    with pytest.raises(PlanError):
        PlanSettings(uid_min=0, uid_max=10)


def test_plan_is_frozen():
    p = plan()
    with pytest.raises(FrozenInstanceError):
        p.uid = 0
    with pytest.raises(TypeError):
        p.environment["HOME"] = "/"
    with pytest.raises(TypeError):
        p.labels["x"] = "y"


def test_labels_are_valid_kubernetes_label_values():
    import re

    p = plan(user="Dr.Alice@Example.org")
    rx = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
    for v in p.labels.values():
        assert rx.match(v), v
    assert p.annotations["insitu.io/user"] == "Dr.Alice@Example.org"
    assert label_value("a@b") != label_value("a#b")


def test_label_values_of_distinct_names_never_collide():
    """kubespawner's safe_slug: a valid name is kept; any other gets '---' and a hash, and a name holding
    '--' is itself slugged. The old hand-written slug gave 'eve-example-<hash>' to 'Eve@Example', the very
    label of a user called 'eve-example-<hash>'."""
    slugged = label_value("Eve@Example")
    assert "---" in slugged
    assert label_value(slugged) != slugged  # a user named like another's slug gets a label of its own
    assert label_value(slugged.replace("---", "-")) != slugged
    assert label_value("alice") == "alice"


def test_profiles_set_resources_and_kind():
    assert plan(profile="notebook-gpu").resources.gpu == 1
    assert plan(profile="notebook-cpu").resources.gpu == 0
    assert plan(profile="notebook-cpu").environment["CUDA_VISIBLE_DEVICES"] == ""
    assert plan(profile="desktop").kind == "desktop"
    custom = replace(S, profiles=(Profile("tiny", "Tiny", "notebook", Resources(0.1, 0.1, 2**28, 2**27)),))
    assert plan(profile="tiny", settings=custom).resources.cpu_limit == 0.1
    with pytest.raises(PlanError):
        plan(profile="notebook-cpu", settings=custom)


def test_plan_from_session_uses_exactly_the_sessions_datasets():
    session = {
        "session_id": "s-42", "user": "alice", "project": "lung",
        "lake_dir": "/var/lake", "lake_mount_path": "/mnt/datalake",
        "datasets": [{"dataset_id": "ds-b", "gid": 70002, "path": "/var/ds/ds-b", "manifest_root": "bb"}],
    }
    p = plan_from_session(session, "notebook-cpu", S)
    assert p.dataset_ids == ("ds-b",) and p.supplementary_gids == (70002,)
    assert p.mounts[0].source == "/var/lake"
    assert p.mounts[1].source == "/var/ds/ds-b"
    assert p.session_id == "s-42" and p.environment["INSITU_SESSION_ID"] == "s-42"
    with pytest.raises(PlanError):
        plan_from_session({"user": "alice"}, "notebook-cpu", S)


def test_session_grants_reach_the_workspace_environment():
    """The grant that covers each dataset and when it ends (the session answer's fields) are in
    $INSITU_GRANTS, per dataset id; nothing when the answer has none of them."""
    session = {
        "session_id": "s-43", "user": "alice", "project": "lung", "lake_dir": "/var/lake",
        "datasets": [
            {"dataset_id": "ds-a", "gid": 70001, "path": "/var/ds/ds-a", "manifest_root": "aa", "grant_id": 7,
             "name": "Lung CT", "version": 2, "expires_at": "2027-03-31T00:00:00+00:00"},
            {"dataset_id": "ds-b", "gid": 70002, "path": "/var/ds/ds-b", "manifest_root": "bb", "grant_id": 9,
             "expires_at": "2027-01-15T12:00:00+00:00"},
        ],
    }
    p = plan_from_session(session, "notebook-cpu", S)
    assert json.loads(p.environment["INSITU_GRANTS"]) == {
        "ds-a": {"grant_id": "7", "expires_at": "2027-03-31T00:00:00+00:00", "name": "Lung CT", "version": "2"},
        "ds-b": {"grant_id": "9", "expires_at": "2027-01-15T12:00:00+00:00"},
    }
    bare = {**session, "datasets": [{"dataset_id": "ds-b", "gid": 70002, "path": "/var/ds/ds-b"}]}
    assert "INSITU_GRANTS" not in plan_from_session(bare, "notebook-cpu", S).environment
    # each dataset also by name, under the datasets mount (hub/dataset_names.py), in the plan and its environment
    assert dict(p.dataset_paths) == {"ds-a": "/mnt/datasets/by-name/lung-ct-v2", "ds-b": "/mnt/datasets/by-name/dataset"}
    assert json.loads(p.environment["INSITU_DATASETS_BY_NAME"]) == dict(p.dataset_paths)


def test_readable_paths_follow_the_datasets_mount_and_a_dataset_id_cannot_take_their_folder():
    p = plan(chosen=["ds-a", "ds-b"], settings=replace(S, datasets_mount_root="/data/sets"),
             granted=[{**GRANTED[0], "name": "Same", "version": "1"}, {**GRANTED[1], "name": "same", "version": "1"}])
    assert dict(p.dataset_paths) == {"ds-a": "/data/sets/by-name/same-v1--ds-a", "ds-b": "/data/sets/by-name/same-v1--ds-b"}
    with pytest.raises(PlanError, match="by-name"):
        plan(chosen=["by-name"], granted=[{"dataset_id": "by-name", "gid": 5000}])


def test_granted_dataset_without_path_needs_datasets_dir():
    with pytest.raises(PlanError):
        plan(settings=replace(S, datasets_dir=None))
    p = plan(settings=replace(S, datasets_dir=None), granted=[GrantedDataset("ds-a", 5000, path="/x/ds-a")])
    assert p.mounts[1].source == "/x/ds-a"
