"""The bpf(2) system call: load a cgroup device program and attach it.

glibc has no wrapper, so the syscall number is per architecture
(:func:`pyinit.linux.syscalls.number`). ``union
bpf_attr`` is passed with only the members each command reads; the kernel
accepts a shorter union as long as it is zero-padded to what it reads.
"""

from __future__ import annotations

import ctypes
import os

from pyinit.linux.syscalls import _check, _libc, number

_NR_BPF = number("bpf")

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


class _Attach(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _Query(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32)]


def _bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    return _check(_libc.syscall(ctypes.c_long(_NR_BPF), ctypes.c_long(cmd), ctypes.byref(attr),
                                ctypes.c_long(ctypes.sizeof(attr))), what)


def load_device_program(code: bytes, name: str = "pyinit_dev") -> int:
    """BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program; its fd (close-on-exec).

    On a verifier rejection the OSError's message carries the verifier's log."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = _ProgLoad(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
                     insns=ctypes.addressof(insns), license=ctypes.addressof(license_),
                     prog_name=name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as exc:
        if exc.errno != 22:  # EINVAL: load again with the verifier's log
            raise
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as exc:
        text = log.value.decode(errors="replace").strip().replace("\n", "; ")
        raise OSError(exc.errno, f"{exc.strerror}: verifier: {text}") from None


def attach_device_program(cgroup_fd: int, prog_fd: int) -> None:
    """BPF_PROG_ATTACH to a cgroup directory fd, with BPF_F_ALLOW_MULTI so that a
    runtime nested in the container can add its own program below (both must allow)."""
    attr = _Attach(target_fd=cgroup_fd, attach_bpf_fd=prog_fd,
                   attach_type=BPF_CGROUP_DEVICE, attach_flags=BPF_F_ALLOW_MULTI)
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")


def attached_device_programs(cgroup_fd: int) -> list[int]:
    """The ids of the device programs attached to the cgroup itself (BPF_PROG_QUERY)."""
    ids = (ctypes.c_uint32 * 64)()
    attr = _Query(target_fd=cgroup_fd, attach_type=BPF_CGROUP_DEVICE,
                  prog_ids=ctypes.addressof(ids), prog_cnt=64)
    _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    return list(ids[:attr.prog_cnt])


def open_cgroup(directory: str) -> int:
    return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
