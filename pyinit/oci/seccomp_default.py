"""The default ``linux.seccomp`` profile: the usual container default, as OCI JSON.

It has the shape of the default docker and podman apply (moby's
``profiles/seccomp/default.json``, as it reads once turned into a config.json
for a given set of capabilities): the default action is ``SCMP_ACT_ERRNO``
with EPERM, and an allow-list names what an ordinary program needs. The list
was written for pyinit from the system calls themselves; what is left out is
what containers are not meant to do without a capability, or should not do at
all:

* kernel-wide state: ``reboot``, ``kexec_*``, modules, ``acct``, ``swapon``,
  the clock (``settimeofday``, ``clock_settime``), ``syslog``, ``quotactl``;
* mounts and namespaces: ``mount``, ``umount2``, ``pivot_root``, ``chroot``,
  ``unshare``, ``setns``, the new mount API (``fsopen`` ... ``open_tree``);
* kernel attack surface with a long CVE record: ``bpf``, ``perf_event_open``,
  ``userfaultfd``, ``keyctl``/``add_key``/``request_key``, ``io_uring_*``,
  ``open_by_handle_at`` (the "shocker" escape), ``lookup_dcookie``;
* ``clone`` with any namespace flag (arg 0 masked with ``CLONE_NEW*`` must be
  0), and ``clone3``, whose flags live in memory a filter cannot read: it
  fails with ENOSYS, so glibc falls back to ``clone``;
* ``personality`` except the harmless values (Linux, 32-bit Linux, UNAME26,
  the query 0xffffffff): other personalities disable ASLR and more;
* ``socket`` for AF_VSOCK (40), which talks to the hypervisor;
* ``socketcall``, i386's (and s390's, ppc's) socket multiplexer: its
  arguments live in memory no filter can read, so allowing it would let
  ``socket(AF_VSOCK)`` through ``int 0x80`` past the rule above. Every direct
  socket call it multiplexes is allowed, and 32-bit glibc uses those since
  Linux 4.3; only old 32-bit binaries that know nothing else lose sockets.
  libseccomp derives ``socketcall`` rules from the socket rules (dropping
  their conditions), so the profile refuses it with an explicit rule, which
  pyinit loads as a second filter (see pyinit/linux/seccomp.py).

``pyinit sandbox`` asks for ``namespaces=True`` (docs/sandbox.md, "Nested"):
the calls in ``NAMESPACE_CALLS`` and any ``clone``/``clone3`` come back, so
its program can make a user namespace and a sandbox in it, as under
bubblewrap. Without a capability they act only on namespaces the caller
owns; the rest of the list above stays refused.

Capabilities the process keeps bring their calls back, as in moby:
``CAP_SYS_ADMIN`` mount, namespaces, any ``clone`` and ``clone3``;
``CAP_SYS_PTRACE`` is not needed for ``ptrace`` itself (allowed since Linux
4.8 made it unable to bypass seccomp) but brings ``kcmp`` and ``pidfd_getfd``;
and so on, in ``_BY_CAPABILITY``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

EPERM = 1
ENOSYS = 38
_CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_AF_VSOCK = 40

ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage
getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr
link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod
mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease process_vm_readv process_vm_writev pselect6 pselect6_time64 ptrace
pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
set_robust_list set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32
setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32
setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt
setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketpair splice stat stat64 statfs statfs64 statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
""".split()

# Calls only some architectures have, by the machine name os.uname() gives.
_BY_MACHINE = {
    "x86_64": ["arch_prctl", "modify_ldt"],
    "i686": ["arch_prctl", "modify_ldt"],
    "aarch64": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                "cacheflush", "set_tls"],
    "armv7l": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
               "cacheflush", "set_tls"],
    "riscv64": ["riscv_flush_icache"],
    "s390x": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
}

# The architectures a process on this machine can make calls through.
_ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "i686": ["SCMP_ARCH_X86"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "armv7l": ["SCMP_ARCH_ARM"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
}

# A capability the process keeps -> the calls it brings back (as moby's profile).
_BY_CAPABILITY = {
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_SYS_ADMIN": ["bpf", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                      "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
                      "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
                      "sethostname", "setns", "syslog", "umount", "umount2", "unshare"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}

# What a nested sandbox (bubblewrap, pyinit sandbox, unshare -r) needs once it has
# made a user namespace: the capabilities it holds there are checked against the
# namespaces it owns, never the host's. Without CAP_SYS_ADMIN's own list: bpf,
# perf_event_open, syslog, quotactl, fanotify_init and lookup_dcookie check the
# initial user namespace, so a nested one gains nothing from them.
NAMESPACE_CALLS = ["chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount",
                   "mount_setattr", "move_mount", "open_tree", "pivot_root", "setdomainname",
                   "sethostname", "setns", "umount", "umount2", "unshare"]

# personality(2) values that change nothing dangerous: PER_LINUX, PER_LINUX32,
# UNAME26, PER_LINUX32|UNAME26, and 0xffffffff (query the current one).
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


def _allow(names: list[str], **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ALLOW", **extra}


def default_profile(capabilities: Iterable[str] = (), machine: str | None = None,
                    namespaces: bool = False) -> dict[str, Any]:
    """The profile for a process keeping ``capabilities`` (names), as config.json wants it;
    with ``namespaces``, one that may also make namespaces and mount in them."""
    caps = set(capabilities)
    machine = machine or os.uname().machine
    rules = [_allow(ALLOWED + _BY_MACHINE.get(machine, []))]
    rules += [_allow(["personality"], args=[{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}])
              for value in _PERSONALITIES]
    rules.append(_allow(["socket"], args=[{"index": 0, "value": _AF_VSOCK,
                                            "op": "SCMP_CMP_NE"}]))
    rules.append({"names": ["socketcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM})
    if "CAP_SYS_ADMIN" in caps or namespaces:
        rules.append(_allow(["clone", "clone3"]))
    else:
        # s390 passes the flags in the second argument; everyone else in the first.
        flags_arg = 1 if machine == "s390x" else 0
        rules.append(_allow(["clone"], args=[{"index": flags_arg, "value": _CLONE_NAMESPACES,
                                              "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]))
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    granted: list[str] = list(NAMESPACE_CALLS) if namespaces else []
    for cap, names in _BY_CAPABILITY.items():
        if cap in caps:
            granted += [n for n in names if n not in granted]
    if granted:
        rules.append(_allow(granted))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(_ARCHITECTURES.get(machine, [])),
        "syscalls": rules,
    }
