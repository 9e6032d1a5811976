"""The pure parts of hub/spawner_base.py: options form, user options, session answer checks.

Golden file: tests/hub/golden/options_form.html is the form rendered from ``GOLDEN_USABLE`` and
``GOLDEN_PROFILES`` (review a change to hub/templates/options_form.html against it, then rewrite it).
"""

from pathlib import Path

import pytest

from hub.spawner_base import (
    WorkspaceRefused,
    check_session_answer,
    parse_form,
    render_form,
    user_projects,
    validate_user_options,
)

USABLE = [
    {"dataset_id": "ds-a", "name": "Lung CT", "version": "1", "project": "lung", "gid": 70001, "expires_at": None},
    {"dataset_id": "ds-<b>", "name": "<script>x</script>", "version": "2", "project": "lung", "gid": 70002,
     "expires_at": "2027-01-01T00:00:00Z"},
]


def test_form_lists_only_usable_datasets_and_escapes_them():
    html = render_form(USABLE, [("notebook-cpu", "Notebook (CPU)")], ["lung", "brain"])
    assert 'value="ds-a"' in html and "Lung CT" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'value="ds-&lt;b&gt;"' in html
    assert html.count('name="dataset"') == 2
    assert 'value="brain"' in html and 'value="lung"' in html
    assert "No dataset" in render_form([], [("notebook-cpu", "x")], [])


GOLDEN = Path(__file__).parent / "golden" / "options_form.html"
GOLDEN_USABLE = USABLE + [
    {"dataset_id": "ds-c", "name": "", "version": "", "project": "brain & co", "gid": 70003, "expires_at": "not a date"},
]
GOLDEN_PROFILES = [("notebook-cpu", "Notebook (CPU)", "2 CPU cores, 8 GiB memory, no GPU"),
                   ("desktop", "Remote <desktop>", ""), ("plain", "Plain")]


def golden_render(**kw) -> str:
    return (render_form(GOLDEN_USABLE, GOLDEN_PROFILES, ["lung", 'oncology"x'], **kw)
            + "\n<!-- no project, no dataset -->\n" + render_form([], [("notebook-cpu", "x")], [], **kw) + "\n")


def test_form_matches_the_golden_file():
    assert golden_render() == GOLDEN.read_text()


def test_form_template_can_be_replaced(tmp_path):
    string = render_form(USABLE, [("p", "P")], ["lung"], template="{% for d in datasets %}[{{ d.id }}]{% endfor %}")
    assert string == "[ds-&lt;b&gt;][ds-a]"  # autoescaped, in display order
    (tmp_path / "options_form.html").write_text("{{ projects | join(',') }}|{{ profiles[0].label }}")
    assert render_form(USABLE, [("p", "<P>")], ["brain"], template_paths=[str(tmp_path)]) == "brain,lung|&lt;P&gt;"


def test_parse_form():
    opts = parse_form({"profile": ["notebook-cpu"], "project": ["lung"], "dataset": ["ds-a", "ds-b"]})
    assert opts == {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a", "ds-b"]}
    with pytest.raises(WorkspaceRefused):
        parse_form({"profile": ["a", "b"], "project": ["lung"]})
    with pytest.raises(WorkspaceRefused):
        parse_form({"profile": ["notebook-cpu"]})


@pytest.mark.parametrize(
    "opts",
    [
        {"profile": "desktop", "project": "lung", "dataset_ids": ["ds-a"]},  # not offered
        {"profile": "notebook-cpu", "project": "", "dataset_ids": ["ds-a"]},
        {"profile": "notebook-cpu", "project": "lung", "dataset_ids": "ds-a"},
        {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a", "ds-a"]},
        {"profile": "notebook-cpu", "project": "lung", "dataset_ids": [1]},
        "not a dict",
    ],
)
def test_validate_user_options_refuses(opts):
    with pytest.raises(WorkspaceRefused):
        validate_user_options(opts, ["notebook-cpu"])


def test_validate_user_options_accepts():
    o = validate_user_options({"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"], "x": 1},
                              ["notebook-cpu"])
    assert o == {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]}


def test_session_answer_must_match_the_request():
    opts = {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]}
    good = {"session_id": "s", "user": "alice", "project": "lung", "datasets": [{"dataset_id": "ds-a", "gid": 7}]}
    check_session_answer(good, "alice", opts)
    for bad in (
        {**good, "user": "bob"},
        {**good, "project": "brain"},
        {**good, "datasets": [{"dataset_id": "ds-a"}, {"dataset_id": "ds-b"}]},
        {**good, "datasets": []},
        {k: v for k, v in good.items() if k != "datasets"},
    ):
        with pytest.raises(WorkspaceRefused):
            check_session_answer(bad, "alice", opts)


def test_user_projects():
    assert user_projects(["researchers", "project-lung", "project-brain", "projects"]) == ["brain", "lung"]
