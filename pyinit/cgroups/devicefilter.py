"""The device rules as a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here. Pure.

cgroup v2 has no devices.allow: the kernel runs an eBPF program attached to
the cgroup for every open and mknod of a device node, with a
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}``, and
allows the access when the program returns 1. ``access_type`` is
``(BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*``.

The program (the behaviour of runc's devicefilter, written afresh):

    r2 = ctx->access_type & 0xffff      device type
    r3 = ctx->access_type >> 16         requested access
    r4 = ctx->major
    r5 = ctx->minor
    for each rule, last first (the last matching rule wins):
        if type differs:    goto next
        allow rule: if the request asks for anything the rule does not grant: goto next
        deny rule:  if the request asks for nothing the rule denies: goto next
        if major differs (unless *): goto next
        if minor differs (unless *): goto next
        return allow
    next: ...
    return default

The allow test is "requested is a subset of granted", as runc's; the deny
test is "requested meets denied", so denying ``w`` also stops an ``rw`` open.
"""

from __future__ import annotations

import struct

from pyinit.oci.resources import DevicePolicy, DeviceRule
from pyinit.record import record

# Instruction classes, sizes, modes, operations and sources (linux/bpf_common.h, bpf.h).
BPF_LDX, BPF_ALU, BPF_JMP, BPF_ALU64 = 0x01, 0x04, 0x05, 0x07
BPF_W = 0x00
BPF_MEM = 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JEQ, BPF_JNE, BPF_EXIT = 0x10, 0x50, 0x90

BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPE = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

R0, R1, R2, R3, R4, R5 = range(6)
_INSN = struct.Struct("<BBhi")


@record
class Insn:
    """One eBPF instruction: 8 bytes (opcode, dst|src<<4, s16 offset, s32 immediate)."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return _INSN.pack(self.code, (self.src << 4) | self.dst, self.off, self.imm)


def ldx_w(dst: int, src: int, off: int) -> Insn:
    """dst = *(u32 *)(src + off)"""
    return Insn(BPF_LDX | BPF_W | BPF_MEM, dst, src, off)


def and32(dst: int, imm: int) -> Insn:
    return Insn(BPF_ALU | BPF_AND | BPF_K, dst, imm=imm)


def rsh32(dst: int, imm: int) -> Insn:
    return Insn(BPF_ALU | BPF_RSH | BPF_K, dst, imm=imm)


def mov32_reg(dst: int, src: int) -> Insn:
    return Insn(BPF_ALU | BPF_MOV | BPF_X, dst, src)


def mov64_imm(dst: int, imm: int) -> Insn:
    return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, imm=imm)


def jne_imm(dst: int, imm: int, off: int) -> Insn:
    return Insn(BPF_JMP | BPF_JNE | BPF_K, dst, off=off, imm=imm)


def jeq_imm(dst: int, imm: int, off: int) -> Insn:
    return Insn(BPF_JMP | BPF_JEQ | BPF_K, dst, off=off, imm=imm)


def exit_insn() -> Insn:
    return Insn(BPF_JMP | BPF_EXIT)


def _access_bits(access: str) -> int:
    bits = 0
    for letter in access:
        bits |= _ACCESS[letter]
    return bits


def _block(rule: DeviceRule) -> list[Insn]:
    """The test for one rule; a jump offset of None means "to the next block"."""
    tests: list[tuple[str, int, int]] = []  # (kind, register/unused, value)
    if rule.type != "a":
        tests.append(("jne", R2, _TYPE[rule.type]))
    bits = _access_bits(rule.access)
    if rule.allow and bits != 0b111:
        tests.append(("subset", 0, bits))
    elif not rule.allow:
        tests.append(("meets", 0, bits))
    if rule.major != -1:
        tests.append(("jne", R4, rule.major))
    if rule.minor != -1:
        tests.append(("jne", R5, rule.minor))
    # Lay the instructions out first; every jump goes to the end of the block.
    laid: list[tuple[Insn, bool]] = []  # (insn, jumps to next block)
    for kind, reg, value in tests:
        if kind == "jne":
            laid.append((jne_imm(reg, value, 0), True))
        elif kind == "subset":  # requested & ~granted != 0 -> next
            laid += [(mov32_reg(R1, R3), False), (and32(R1, ~bits & 0b111), False),
                     (jne_imm(R1, 0, 0), True)]
        else:  # requested & denied == 0 -> next
            laid += [(mov32_reg(R1, R3), False), (and32(R1, bits), False),
                     (jeq_imm(R1, 0, 0), True)]
    laid += [(mov64_imm(R0, 1 if rule.allow else 0), False), (exit_insn(), False)]
    out = []
    for i, (insn, jumps) in enumerate(laid):
        if jumps:
            insn = Insn(insn.code, insn.dst, insn.src, len(laid) - i - 1, insn.imm)
        out.append(insn)
    return out


def program(policy: DevicePolicy) -> list[Insn]:
    insns = [
        ldx_w(R2, R1, 0), and32(R2, 0xFFFF),
        ldx_w(R3, R1, 0), rsh32(R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ]
    for rule in reversed(policy.rules):
        insns += _block(rule)
    insns += [mov64_imm(R0, 1 if policy.default_allow else 0), exit_insn()]
    return insns


def assemble(policy: DevicePolicy) -> bytes:
    return b"".join(insn.encode() for insn in program(policy))
