"""The readable folder names of a workspace's datasets (hub/dataset_names.py): safe with any name a
data manager may type, distinct within a workspace, readable where the name allows."""

import itertools
import random
import re

import pytest

from hub.dataset_names import (BY_NAME, FALLBACK, NAME_MAX, link_target, name_slug, readable_names,
                               readable_paths, version_slug)

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*(-v[a-z0-9]+([.-][a-z0-9]+)*)?$")


@pytest.mark.parametrize("name, version, want", [
    ("Lung CT demo", "1", "lung-ct-demo-v1"),
    ("Lung CT demo", 2, "lung-ct-demo-v2"),
    ("Lung CT follow-up", "1", "lung-ct-follow-up-v1"),
    ("Étude du poumon – 2024", "1.2", "etude-du-poumon-2024-v1.2"),
    ("../../etc", "", "etc"),
    ("../../etc", "../..", "etc"),
    ("/", "1", f"{FALLBACK}-v1"),
    ("", "", FALLBACK),
    (None, None, FALLBACK),
    ("肺癌 CT", "3", "ct-v3"),
    ("肺癌", "3", f"{FALLBACK}-v3"),
    ("x--y", "1..2", "x-y-v1-2"),
    ("A/B\\C\x00D\nE", "v2", "a-b-c-d-e-v2"),
    ("..", ".", FALLBACK),
    ("  Brain MRI  ", " 7 ", "brain-mri-v7"),
])
def test_slug_of_hostile_and_ordinary_names(name, version, want):
    assert name_slug(name, version) == want


def test_very_long_names_and_versions_are_cut_to_one_short_component():
    s = name_slug("Ä" * 10_000 + " tail", "9" * 500)
    assert s == "a" * NAME_MAX + "-v" + "9" * 20
    assert len(s.encode()) <= 255
    # cut at the limit, never ending on a hyphen
    assert name_slug("ab-" * 100) == ("ab-" * 20)[:NAME_MAX].rstrip("-")


def test_any_name_gives_a_safe_single_component():
    rnd = random.Random(13)
    alphabet = "aZ9 ./\\-_é肺\x00\n..~*?:"
    for _ in range(3000):
        name = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 90)))
        version = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 8)))
        s = name_slug(name, version)
        assert s and "/" not in s and s not in (".", "..") and "--" not in s, (name, version, s)
        assert SLUG.match(s) and len(s) <= NAME_MAX + 2 + 20, (name, version, s)
        assert version_slug(version) in ("",) + tuple([s.rsplit("-v", 1)[-1]])


def test_colliding_slugs_all_stay_reachable_with_their_id():
    names = readable_names([("ds-1", "Lung CT", "1"), ("ds-2", "lung  ct", 1), ("ds-3", "Other", ""),
                            ("ds-4", "LUNG-CT", "1")])
    assert names == {"ds-1": "lung-ct-v1--ds-1", "ds-2": "lung-ct-v1--ds-2", "ds-3": "other",
                     "ds-4": "lung-ct-v1--ds-4"}
    # the same name in two versions is no collision
    assert readable_names([("a", "Lung", "1"), ("b", "Lung", "2")]) == {"a": "lung-v1", "b": "lung-v2"}


def test_names_are_distinct_even_when_a_name_imitates_another_ones_suffix():
    # a name crafted to look like a suffixed one cannot take its place: a slug never holds "--"
    rows = [("ds-1", "x", "1"), ("ds-2", "X", "1"), ("ds-3", "x v1 ds 1", ""), ("ds-4", "x-v1--ds-1", "")]
    names = readable_names(rows)
    assert len(set(names.values())) == 4, names
    for perm in itertools.permutations(rows):
        assert readable_names(perm) == names  # not a matter of order


def test_no_name_equals_the_folder_itself_or_an_id_path():
    paths = readable_paths([("ds-a", "by-name", ""), ("ds-b", "..", "")], "/mnt/datasets/")
    assert paths == {"ds-a": f"/mnt/datasets/{BY_NAME}/by-name", "ds-b": f"/mnt/datasets/{BY_NAME}/{FALLBACK}"}
    assert link_target("ds-a") == "../ds-a"


def test_a_dataset_id_given_twice_is_refused():
    with pytest.raises(ValueError):
        readable_names([("ds-1", "a", "1"), ("ds-1", "b", "1")])
