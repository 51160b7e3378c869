#!/usr/bin/env bash
# Build every pyinit image variant, offline, and tag them:
#
#   localhost/pyinit:debian-slim   the root Dockerfile on the local Debian base
#   localhost/pyinit:minimal       busybox + the drop-in binary (no Python in the image)
#
# and the drop-in binary itself, in build/dropin/opt/pyinit (PyInstaller
# --onedir, with the libraries it needs under build/dropin/lib*), which
# users COPY into their own images.
#
# Needs root, podman (tools/install.sh), and PyPI for PyInstaller on the host.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${CONTAINERS_CONF:-}" ] && [ ! -e /etc/containers/containers.conf ]; then
    export CONTAINERS_CONF=$PWD/tools/containers.conf
fi
log() { printf '[images/build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

tools/build-base-images.sh
log "wheelhouse"
rm -rf build/wheelhouse
python=${PYTHON:-.venv/bin/python}
"$python" -m pip wheel -q --disable-pip-version-check -w build/wheelhouse .

log "localhost/pyinit:debian-slim"
podman build -q --pull=never --network none --build-arg BASE=localhost/python-base:bookworm \
    -t localhost/pyinit:debian-slim -f Dockerfile . >/dev/null

log "drop-in binary (PyInstaller --onedir)"
work=build/pyinstaller
rm -rf "$work" build/dropin
mkdir -p "$work" build/dropin/opt
[ -x "$work/venv/bin/python" ] || /usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check pyinstaller
"$work/venv/bin/pip" install -q --disable-pip-version-check --no-index \
    --find-links build/wheelhouse pyinit
"$work/venv/bin/pyinstaller" --noconfirm --onedir --name pyinit --strip --log-level WARN \
    --collect-submodules pyinit --collect-submodules trio --collect-submodules structlog \
    --distpath "$work/dist" --workpath "$work/tmp" --specpath "$work" images/dropin/entry.py
cp -a "$work/dist/pyinit" build/dropin/opt/pyinit
# The C libraries it links (glibc, libz, ...) go into /opt/pyinit/lib, and the
# bootloader's interpreter and rpath point there: the directory needs nothing
# from the image it is copied into (busybox, scratch), as long as it sits at
# /opt/pyinit.
dropin=build/dropin/opt/pyinit
find "$dropin" -type f \( -name pyinit -o -name '*.so*' \) -print0 |
    xargs -0 ldd 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib64\// {print $1}' |
    sort -u | while read -r lib; do
        install -D -m 0755 "$(readlink -f "$lib")" "$dropin/lib/$(basename "$lib")"
    done
# libseccomp is loaded with ctypes (pyinit/linux/seccomp.py), which ldd cannot see.
# awk reads to the end: an early exit would kill ldconfig with SIGPIPE, which
# pipefail turns into this script's exit status 141.
seccomp=$(ldconfig -p | awk '/libseccomp\.so\.2 / && !found {print $NF; found = 1}')
[ -n "$seccomp" ] || { echo "libseccomp.so.2 is needed (tools/install.sh)" >&2; exit 1; }
install -D -m 0755 "$(readlink -f "$seccomp")" "$dropin/lib/libseccomp.so.2"
command -v patchelf >/dev/null || { echo "patchelf is needed (tools/install.sh)" >&2; exit 1; }
patchelf --set-interpreter /opt/pyinit/lib/ld-linux-x86-64.so.2 --force-rpath \
    --set-rpath /opt/pyinit/lib "$dropin/pyinit"
# The one file podman run --init-path needs (see images/dropin/init-shim.c).
gcc -static -Os -o build/dropin/pyinit-init images/dropin/init-shim.c

log "localhost/pyinit:minimal"
podman build -q --pull=never --network none -t localhost/pyinit:minimal \
    -f images/minimal/Dockerfile . >/dev/null
log "done"
