"""The workspace seccomp filter (hub/seccomp.py): golden listing, an interpreter run, and a real load.

The real attacks from a workspace kernel are in test_isolation_attacks.py; here
the program itself is checked: its listing against the golden file (review the
diff after an intended change: ``INSITU_UPDATE_GOLDEN=1``), its decisions for
every refused call and for ordinary ones, and that the kernel accepts it
(bubblewrap ``--seccomp``) and then refuses keyctl/ptrace/unshare as the nobody uid.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub import seccomp
from hub.seccomp import (AUDIT_ARCH_X86_64, DENIED, NR, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, build_filter, describe,
                         filter_bytes, run_filter)

GOLDEN = Path(__file__).parent / "golden" / "seccomp_filter.txt"
UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")


def test_listing_matches_the_golden_file():
    text = describe() + "\n"
    if os.environ.get("INSITU_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    assert len(filter_bytes()) == 8 * len(build_filter())


@pytest.mark.skipif(not UNISTD.exists(), reason="kernel headers not installed")
def test_syscall_numbers_match_the_kernel_headers():
    table = dict(re.findall(r"#define __NR_(\w+) (\d+)", UNISTD.read_text()))
    for name, nr in NR.items():
        assert int(table[name]) == nr, name


def test_decisions():
    prog = build_filter()
    for name in DENIED:
        assert run_filter(prog, NR[name]) == RET_ERRNO | errno.EPERM, name
    for nr in (0, 1, 2, 9, 57, 59, 231, 257):  # read write open mmap fork execve exit_group openat
        assert run_filter(prog, nr) == RET_ALLOW, nr
    assert run_filter(prog, NR["clone3"]) == RET_ERRNO | errno.ENOSYS
    assert run_filter(prog, NR["clone"], args=(0x003D0F00,)) == RET_ALLOW  # a thread (CLONE_VM|FS|FILES|...)
    assert run_filter(prog, NR["clone"], args=(17,)) == RET_ALLOW  # fork: SIGCHLD
    for flag in (0x10000000, 0x20000000, 0x40000000, 0x00020000, 0x02000000, 0x04000000, 0x08000000):
        assert run_filter(prog, NR["clone"], args=(flag | 17,)) == RET_ERRNO | errno.EPERM, hex(flag)
    assert run_filter(prog, 0, arch=0x40000003) == RET_KILL_PROCESS  # i386
    assert run_filter(prog, 0x40000000 | 1) == RET_KILL_PROCESS  # x32 ABI
    assert AUDIT_ARCH_X86_64 == 0xC000003E


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap") or os.uname().machine != "x86_64",
                    reason="needs root, bubblewrap and x86-64")
def test_the_kernel_applies_it_under_bubblewrap():
    code = r'''
import ctypes, errno, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def sc(*a):
    r = libc.syscall(*a)
    return (r, errno.errorcode.get(ctypes.get_errno(), "") if r == -1 else "")
print(sc(250, 0, -3, 0), sc(101, 0, 0, 0, 0), sc(272, 0x10000000),
      subprocess.run(["true"]).returncode, subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode)
'''
    fd = os.memfd_create("test-seccomp")
    os.write(fd, filter_bytes())
    os.lseek(fd, 0, os.SEEK_SET)
    argv = ["bwrap", "--seccomp", str(fd), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid",
            "--", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
            "/usr/bin/python3", "-c", code]
    try:
        out = subprocess.run(argv, pass_fds=[fd], capture_output=True, text=True, timeout=60)
    finally:
        os.close(fd)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(-1, 'EPERM') (-1, 'EPERM') (-1, 'EPERM') 0 1", out.stdout


def test_module_is_pure():
    src = Path(seccomp.__file__).read_text()
    assert "import os" not in src and "subprocess" not in src and sys.modules["hub.seccomp"]
