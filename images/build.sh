#!/usr/bin/env bash
# Build every pyinit image variant, offline, and tag them:
#
#   localhost/pyinit:debian-slim   the root Dockerfile on the local Debian base
#   localhost/pyinit:minimal       busybox + the drop-in (no Python in the image)
#
# and the drop-in itself, build/dropin/opt/pyinit (images/dropin/build.sh:
# pyinit with its own CPython and C libraries), which users COPY into their
# own images.
#
# PYINIT_IMAGE names the images instead of localhost/pyinit (a second
# checkout's tests, run while another's are, tag their own).
#
# Needs root and podman (tools/install.sh); pip wheel fetches pyinit's
# dependencies from the configured index.
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

image=${PYINIT_IMAGE:-localhost/pyinit}
log "$image:debian-slim"
podman build -q --pull=never --network none --build-arg BASE=localhost/python-base:bookworm \
    -t "$image:debian-slim" -f Dockerfile . >/dev/null

log "the drop-in (images/dropin/build.sh)"
images/dropin/build.sh build/wheelhouse

log "$image:minimal"
podman build -q --pull=never --network none -t "$image:minimal" \
    -f images/minimal/Dockerfile . >/dev/null
log "done"
