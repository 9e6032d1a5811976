"""The workspace's seccomp filter, as classic BPF for bubblewrap's ``--seccomp FD``. Pure.

The filter follows the default profile container runtimes apply to a
container without capabilities (Docker/Moby's ``default.json``, Podman's):
system calls that administer the machine, the kernel, other processes'
memory, keys, mounts and namespaces answer ``EPERM``; everything else is
allowed. In particular, no new namespace can be made inside a workspace:
``unshare`` and ``setns`` are refused and ``clone`` with any ``CLONE_NEW*``
flag is refused (so ``unshare -U`` and user-namespace sandboxes fail);
``clone3``, whose flags live in memory a filter cannot read, answers
``ENOSYS`` so that the C library falls back to ``clone`` (as Docker does).

The program checks the architecture first (x86-64 only; anything else, the
x32 ABI included, kills the process) and is a straight list of
``jeq nr / ret`` pairs, so every jump is short and the program is easy to
read back (``describe``). ``tests/hub/test_seccomp.py`` holds the golden
bytes and an interpreter run of the program.
"""

from __future__ import annotations

import errno
import struct

__all__ = ["DENIED", "NAMESPACE_FLAGS", "build_filter", "filter_bytes", "run_filter", "describe"]

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
NR = {
    "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "ustat": 136, "sysfs": 139, "vhangup": 153,
    "pivot_root": 155, "_sysctl": 156, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
    "create_module": 174, "init_module": 175, "delete_module": 176, "get_kernel_syms": 177, "query_module": 178,
    "quotactl": 179, "nfsservctl": 180, "afs_syscall": 183, "lookup_dcookie": 212, "clock_settime": 227,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "move_pages": 279,
    "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
}

# refused with EPERM, whatever the arguments
DENIED: tuple[str, ...] = (
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    # other processes and the kernel's keys
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "add_key", "request_key", "keyctl",
    # the kernel itself
    "bpf", "perf_event_open", "userfaultfd", "init_module", "finit_module", "delete_module", "create_module",
    "kexec_load", "kexec_file_load", "get_kernel_syms", "query_module", "uselib", "syslog", "_sysctl", "sysfs",
    "ustat", "lookup_dcookie", "nfsservctl", "afs_syscall", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "fanotify_init", "name_to_handle_at", "open_by_handle_at", "move_pages",
    # the machine
    "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "iopl", "ioperm", "vhangup", "quotactl", "quotactl_fd",
)

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (| NEWTIME)
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80

# classic BPF
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low word (little-endian)

Insn = tuple[int, int, int, int]  # code, jt, jf, k


def build_filter(denied: tuple[str, ...] = DENIED) -> list[Insn]:
    prog: list[Insn] = [
        (LD_W_ABS, 0, 0, OFF_ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, RET_KILL_PROCESS),
        (LD_W_ABS, 0, 0, OFF_NR),
        (JGE_K, 0, 1, X32_SYSCALL_BIT),
        (RET_K, 0, 0, RET_KILL_PROCESS),
    ]
    for name in denied:
        prog += [(JEQ_K, 0, 1, NR[name]), (RET_K, 0, 0, RET_ERRNO | errno.EPERM)]
    prog += [
        (JEQ_K, 0, 1, NR["clone3"]),
        (RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
        (JEQ_K, 0, 3, NR["clone"]),
        (LD_W_ABS, 0, 0, OFF_ARG0),
        (JSET_K, 0, 1, NAMESPACE_FLAGS),
        (RET_K, 0, 0, RET_ERRNO | errno.EPERM),
        (RET_K, 0, 0, RET_ALLOW),
    ]
    return prog


def filter_bytes(prog: list[Insn] | None = None) -> bytes:
    """The program as ``struct sock_filter[]`` (what ``bwrap --seccomp FD`` reads)."""
    return b"".join(struct.pack("<HBBI", *i) for i in (prog if prog is not None else build_filter()))


def run_filter(prog: list[Insn], nr: int, arch: int = AUDIT_ARCH_X86_64, args: tuple[int, ...] = ()) -> int:
    """Interpret ``prog`` for one system call (the subset of BPF used here); returns the action word."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == RET_K:
            return k
        elif code in (JEQ_K, JGE_K, JSET_K):
            hit = {JEQ_K: acc == k, JGE_K: acc >= k, JSET_K: bool(acc & k)}[code]
            pc += 1 + (jt if hit else jf)
        else:
            raise ValueError(f"instruction {code:#x} not in this interpreter")


def describe(prog: list[Insn] | None = None) -> str:
    """A readable listing of the program (for reviews and the golden test)."""
    names = {v: k for k, v in NR.items()}
    out = []
    for i, (code, jt, jf, k) in enumerate(prog if prog is not None else build_filter()):
        if code == LD_W_ABS:
            out.append(f"{i:3} ld [{ {0: 'nr', 4: 'arch', 16: 'arg0'}[k] }]")
        elif code == RET_K:
            act = {RET_ALLOW: "allow", RET_KILL_PROCESS: "kill"}.get(k) or f"errno {errno.errorcode[k & 0xFFFF]}"
            out.append(f"{i:3} ret {act}")
        else:
            op = {JEQ_K: "jeq", JGE_K: "jge", JSET_K: "jset"}[code]
            arg = names.get(k, hex(k)) if code == JEQ_K and k < 1000 else hex(k)
            out.append(f"{i:3} {op} {arg} ? +{jt} : +{jf}")
    return "\n".join(out)
