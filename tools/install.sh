#!/usr/bin/env bash
# Set up a Debian 12 machine, as root, for pyinit's tests and benchmarks:
# the Debian packages they use, and a virtualenv in .venv (built from the
# system's /usr/bin/python3, so it is world-readable and no pyenv shim sits
# in front of the interpreter) with pyinit installed in it, editable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
    python3-venv      # the virtualenv
    util-linux        # unshare: pyinit as PID 1 of a new PID namespace in the tests
    procps            # ps, for people reading the tests' output
    busybox-static    # a static shell for root filesystems without Python
    tini dumb-init catatonit hyperfine   # bench/: the inits pyinit is measured against
    runc                                  # bench/bench_run.py
    jq                                    # docs/logging.md's recipes
    uidmap                                # newuidmap/newgidmap: rootless pyinit run, sandbox --map-subids
    bubblewrap                            # tests/integration/test_bwrap_diff.py: the reference
    iproute2                              # ss: tests/security/test_review2_terminal.py finds the peer of PID 1's log socket
    libseccomp2                           # linux.seccomp (pyinit/linux/seccomp.py loads it with ctypes)
    podman buildah debootstrap            # tests/integration/test_image.py
    dbus-daemon python3-gi gir1.2-glib-2.0  # --cgroup-manager systemd: a private bus and a
                                          # stand-in systemd (tests/helpers/fake_systemd.py)
    patchelf                              # images/build.sh: the self-contained drop-in
    libpython3.11-dev binutils gcc libc6-dev  # images/dropin (static libpython, strip), bench/clock.c
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
echo "install.sh: ready: .venv/bin/pyinit ($(.venv/bin/pyinit --version))" >&2
