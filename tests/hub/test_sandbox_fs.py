"""Root's file operations for a workspace (hub/fsops.py, hub/sandbox_fs.py) against a researcher's symlinks.

Each test lays out what a researcher's uid could have made (a symlink where a
folder should be, a symlink inside the runtime folder pointing at a root-owned
file) and checks that root refuses or removes without following: the decoys
keep owner, mode and content. The live race from a workspace kernel is in
test_isolation_attacks.py.
"""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from hub.fsops import UnsafePath, open_trusted_dir, remove_tree_at
from hub.sandbox_fs import MIGRATION_NOTE, prepare_home, prepare_runtime, remove_runtime

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root's file operations: needs root")

UID, GID = 231234, 100


def snap(p):
    st = os.lstat(p)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def decoy(tmp_path):
    d = tmp_path / "decoy"
    d.mkdir(mode=0o755)
    (d / "file").write_text("root's\n")
    os.chmod(d / "file", 0o644)
    return d


def test_home_layout_per_user_and_project(tmp_path):
    homes = tmp_path / "homes"
    path = prepare_home(str(homes), "alice", "lung", UID, GID)
    assert path == str(homes / "alice" / "lung")
    assert snap(homes) == (0, 0, 0o711) and snap(homes / "alice") == (0, 0, 0o711)
    assert snap(homes / "alice" / "lung") == (UID, GID, 0o700)
    prepare_home(str(homes), "alice", "brain", UID, GID)
    assert sorted(os.listdir(homes / "alice")) == ["brain", "lung"]
    # again: nothing changes, the existing home is checked
    (homes / "alice" / "lung" / "x").write_text("x")
    prepare_home(str(homes), "alice", "lung", UID, GID)
    assert (homes / "alice" / "lung" / "x").read_text() == "x"


def test_former_single_home_moves_into_the_first_project(tmp_path):
    homes = tmp_path / "homes"
    homes.mkdir(mode=0o755)
    old = homes / "alice"
    old.mkdir(mode=0o700)
    (old / "notebook.ipynb").write_text("{}")
    os.chown(old, UID, GID)
    prepare_home(str(homes), "alice", "lung", UID, GID)
    assert snap(homes / "alice") == (0, 0, 0o711)
    assert (homes / "alice" / "lung" / "notebook.ipynb").read_text() == "{}"
    assert snap(homes / "alice" / "lung")[0] == UID
    note = homes / "alice" / "lung" / MIGRATION_NOTE
    assert "project lung" in note.read_text() and snap(note)[0] == UID
    prepare_home(str(homes), "alice", "brain", UID, GID)
    assert os.listdir(homes / "alice" / "brain") == []
    assert not [n for n in os.listdir(homes) if n.startswith(".migrating")]


def test_a_home_of_another_uid_or_a_symlink_is_refused(tmp_path, decoy):
    homes = tmp_path / "homes"
    homes.mkdir(mode=0o711)
    os.symlink(decoy, homes / "alice")
    before = snap(decoy), snap(decoy / "file")
    with pytest.raises(UnsafePath):
        prepare_home(str(homes), "alice", "lung", UID, GID)
    assert (snap(decoy), snap(decoy / "file")) == before and os.listdir(decoy) == ["file"]
    (homes / "bob").mkdir(mode=0o700)
    os.chown(homes / "bob", UID + 1, GID)
    with pytest.raises(UnsafePath):
        prepare_home(str(homes), "bob", "lung", UID, GID)
    (homes / "carol").mkdir(mode=0o711)
    os.symlink(decoy, homes / "carol" / "lung")
    with pytest.raises(UnsafePath):
        prepare_home(str(homes), "carol", "lung", UID, GID)
    assert (snap(decoy), snap(decoy / "file")) == before


def test_trusted_path_refuses_folders_others_can_write(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(UnsafePath):
        os.close(open_trusted_dir(str(d / "x"), create_mode=0o711))
    assert not (d / "x").exists()
    u = tmp_path / "users"
    u.mkdir(mode=0o755)
    os.chown(u, UID, GID)
    with pytest.raises(UnsafePath):
        os.close(open_trusted_dir(str(u)))
    s = tmp_path / "sticky"
    s.mkdir()
    os.chmod(s, 0o1777)
    os.close(open_trusted_dir(str(s / "root-owned"), create_mode=0o711))  # like /tmp/insitu-ws
    assert snap(s / "root-owned") == (0, 0, 0o711)


def test_runtime_folder_layout_and_removal_without_following(tmp_path, decoy):
    rd = prepare_runtime(str(tmp_path / "rt"), UID, GID, {"passwd": "p\n", "group": "g\n", "hosts": "h\n"})
    assert snap(rd) == (0, 0, 0o711)
    assert snap(f"{rd}/etc") == (0, 0, 0o755) and snap(f"{rd}/etc/passwd") == (0, 0, 0o644)
    assert snap(f"{rd}/hub") == (0, 0, 0o755)
    assert snap(f"{rd}/run") == (UID, GID, 0o700) and snap(f"{rd}/run/jupyter") == (UID, GID, 0o700)
    # what the researcher leaves in run/: symlinks to root's files and folders
    for n, t in (("hub.sock", decoy / "file"), ("jupyter", decoy), ("x", decoy)):
        p = f"{rd}/run/{n}"
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        os.symlink(t, p)
    before = snap(decoy), snap(decoy / "file")
    remove_runtime(rd)
    assert not os.path.exists(rd)
    assert (snap(decoy), snap(decoy / "file")) == before and (decoy / "file").read_text() == "root's\n"


def test_remove_tree_at_refuses_names_with_slashes(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for bad in ("a/b", "..", ".", ""):
            with pytest.raises(UnsafePath):
                remove_tree_at(fd, bad)
    finally:
        os.close(fd)


def test_remove_tree_at_refuses_an_rmtree_that_follows_symlinks(tmp_path, monkeypatch):
    """The check is an explicit test (an ``assert`` would vanish under ``python -O``): a ``shutil.rmtree``
    that cannot avoid symlink attacks removes nothing."""
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "file").write_text("kept\n")
    monkeypatch.setattr(shutil.rmtree, "avoids_symlink_attacks", False)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(UnsafePath):
            remove_tree_at(fd, "tree")
    finally:
        os.close(fd)
    assert (tmp_path / "tree" / "file").read_text() == "kept\n"
