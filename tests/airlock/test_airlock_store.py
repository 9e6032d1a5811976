"""The frozen store: names, symlinks, special files, limits, immutability."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from dataset_service.airlock.store import FrozenStore, RefusedFile, check_name


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "homes" / "alice"
    (h / "results").mkdir(parents=True)
    (h / "results" / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\nfigure")
    return h


@pytest.fixture
def store(tmp_path):
    return FrozenStore(tmp_path / "store")


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../bob/x", "results/../../bob/x", "results//fig.png",
                                  "./results/fig.png", "results/.", "~/x", "a\x00b", "a\nb", "a\\b", " x", "x ",
                                  "a" * 600])
def test_bad_names_are_refused(name):
    with pytest.raises(RefusedFile):
        check_name(name)


def test_freeze_copies_hashes_and_makes_read_only(home, store):
    data = (home / "results" / "fig.png").read_bytes()
    f = store.freeze_from_home(home, "results/fig.png", max_size=1000)
    assert f.sha256 == hashlib.sha256(data).hexdigest() and f.size == len(data)
    p = store.path_of(f.sha256)
    assert p.read_bytes() == data
    assert stat.S_IMODE(p.stat().st_mode) == 0o444
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    # a later change in the home does not touch the frozen copy
    (home / "results" / "fig.png").write_bytes(b"changed")
    assert p.read_bytes() == data and store.verify(f.sha256)
    # the same content again is stored once
    (home / "copy.png").write_bytes(data)
    assert store.freeze_from_home(home, "copy.png", max_size=1000).sha256 == f.sha256
    assert list(store.root.glob("tmp/*")) == []


def test_symlinks_are_refused_anywhere_in_the_name(home, store, tmp_path):
    secret = tmp_path / "secret.dcm"
    secret.write_bytes(b"lake data")
    os.symlink(secret, home / "link.dcm")
    os.symlink(tmp_path, home / "outside")
    os.symlink(home / "results", home / "inside")  # even a link that stays in the home
    for name in ("link.dcm", "outside/secret.dcm", "inside/fig.png"):
        with pytest.raises(RefusedFile) as e:
            store.freeze_from_home(home, name, max_size=1000)
        assert "symlink" in e.value.reason
    assert not (store.root / "sha256").exists() or not any((store.root / "sha256").rglob("*"))


def test_special_files_folders_hard_links_and_missing_files_are_refused(home, store, tmp_path):
    os.mkfifo(home / "pipe")
    outside = tmp_path / "other.bin"
    outside.write_bytes(b"x")
    os.link(outside, home / "hard.bin")
    cases = {"pipe": "regular", "results": "folder", "hard.bin": "hard link", "nope.txt": "no such file"}
    for name, why in cases.items():
        with pytest.raises(RefusedFile) as e:
            store.freeze_from_home(home, name, max_size=1000)
        assert why in e.value.reason, (name, e.value.reason)


def test_file_of_another_owner_is_refused(home, store):
    p = home / "planted.bin"
    p.write_bytes(b"not mine")
    os.chown(p, 12345, 12345)
    with pytest.raises(RefusedFile) as e:
        store.freeze_from_home(home, "planted.bin", max_size=1000)
    assert "owned" in e.value.reason


def test_size_limit(home, store):
    (home / "big.bin").write_bytes(b"\0" * 2001)
    with pytest.raises(RefusedFile) as e:
        store.freeze_from_home(home, "big.bin", max_size=2000)
    assert "limit" in e.value.reason
    assert store.freeze_from_home(home, "big.bin", max_size=2001).size == 2001


def test_missing_home_and_bad_digest(store, tmp_path):
    with pytest.raises(RefusedFile):
        store.freeze_from_home(tmp_path / "nohome", "x", max_size=10)
    with pytest.raises(ValueError):
        store.path_of("../../etc/passwd")
