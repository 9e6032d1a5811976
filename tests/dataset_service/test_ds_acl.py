"""ACL entries written as xattrs behave like setfacl and open exactly what they should, for real."""
import os
import subprocess

from dataset_service import acl

NOBODY = 65534


def as_nobody(gids: list[int], *cmd: str) -> subprocess.CompletedProcess:
    groups = ["--groups", ",".join(map(str, gids))] if gids else ["--clear-groups"]
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", *groups, *cmd],
                          capture_output=True, text=True)


def getfacl(path) -> list[str]:
    out = subprocess.run(["getfacl", "-cp", str(path)], capture_output=True, text=True, check=True).stdout
    return sorted(l for l in out.splitlines() if l and not l.startswith("#"))


def test_grant_matches_setfacl(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for p in (a, b):
        p.mkdir(mode=0o750)
        os.chmod(p, 0o750)
        subprocess.run(["setfacl", "-m", "g:4001:r-x", str(p)], check=True)
    assert acl.grant_group(a, 4002, 5) is True
    assert acl.grant_group(a, 4002, 5) is False  # idempotent
    subprocess.run(["setfacl", "-m", "g:4002:r-x", str(b)], check=True)
    assert getfacl(a) == getfacl(b)
    assert "group:4002:r-x" in getfacl(a) and "group:4001:r-x" in getfacl(a)
    acl.revoke_group(a, 4002)
    subprocess.run(["setfacl", "-x", "g:4002", str(b)], check=True)
    assert getfacl(a) == getfacl(b)


def test_grant_tree_opens_only_for_that_group(open_tmp):
    tmp_path = open_tmp
    top = tmp_path / "lake"
    study = top / "s1" / "st"
    (study / "se").mkdir(parents=True)
    f = study / "se" / "0001.dcm"
    f.write_bytes(b"data")
    os.chmod(tmp_path, 0o711)
    os.chmod(top, 0o711)
    os.chmod(top / "s1", 0o711)
    os.chmod(study, 0o700)
    os.chmod(study / "se", 0o700)
    os.chmod(f, 0o600)
    assert as_nobody([4711], "cat", str(f)).returncode != 0
    assert acl.grant_tree(str(study), 4711) == 3
    r = as_nobody([4711], "cat", str(f))
    assert r.returncode == 0 and r.stdout == "data"
    assert as_nobody([], "cat", str(f)).returncode != 0          # no group: refused
    assert as_nobody([4712], "cat", str(f)).returncode != 0      # another dataset's group: refused
    assert as_nobody([4711], "ls", str(top)).returncode != 0     # the lake cannot be listed
    assert as_nobody([4711], "sh", "-c", f"echo x > {study}/se/new").returncode != 0  # r-x only
