"""Apply a seccomp profile to this process, then exec a program (tests only).

Usage: seccomp_exec.py PROFILE.json|- [--no-nnp] -- PROGRAM [ARGS...]
       seccomp_exec.py --from-fd FD [--no-nnp] -- PROGRAM [ARGS...]

The second form loads a compiled BPF program read from FD (bubblewrap's
``--seccomp FD``) instead of compiling a profile.

The real thing, end to end: pyinit's parser, libseccomp through
pyinit.linux.seccomp, and the kernel. The names of skipped system calls go to
stderr as one line, ``skipped: a,b``, before the exec. Exit 125 with the
reason on a bad profile or a refused install.
"""

from __future__ import annotations

import json
import os
import sys

from pyinit.errors import SetupError
from pyinit.linux import seccomp as linux_seccomp
from pyinit.linux import syscalls
from pyinit.oci.seccomp import parse_seccomp


def main() -> None:
    args = sys.argv[1:]
    sep = args.index("--")
    options, program = args[:sep], args[sep + 1:]
    if options[0] == "--from-fd":
        try:
            prepared = linux_seccomp.read_program(int(options[1]))
        except ValueError as exc:
            sys.stderr.write(f"{exc}\n")
            sys.exit(125)
    else:
        if options[0] == "-":
            profile, problems = parse_seccomp(json.load(sys.stdin))
        else:
            with open(options[0]) as fh:
                profile, problems = parse_seccomp(json.load(fh))
        if problems or profile is None:
            for where, reason in problems:
                sys.stderr.write(f"{where}: {reason}\n")
            sys.exit(125)
        try:
            prepared = linux_seccomp.prepare(profile)
        except SetupError as exc:
            sys.stderr.write(exc.line() + "\n")
            sys.exit(125)
    sys.stderr.write(f"skipped: {','.join(prepared.skipped)}\n")
    sys.stderr.flush()
    if "--no-nnp" not in options:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    try:
        linux_seccomp.install(prepared)
    except OSError as exc:
        sys.stderr.write(f"install: {exc}\n")
        sys.stderr.flush()
        os._exit(125)
    os.execv(program[0], program)


if __name__ == "__main__":
    main()
