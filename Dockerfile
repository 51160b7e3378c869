# pyinit as an image's init, in a virtualenv with precompiled bytecode.
#
#   pip wheel -w build/wheelhouse .     # pyinit and its dependencies, on the host
#   podman build --network none -t pyinit .
#   podman build --network none --build-arg BASE=localhost/python-base:bookworm -t pyinit .
#
# The build is offline: everything comes from build/wheelhouse. BASE is any
# image with python3 and its venv module (Debian: python3-venv).
ARG BASE=docker.io/library/python:3.11-slim
FROM ${BASE}
COPY build/wheelhouse/ /tmp/wheelhouse/
RUN python3 -m venv /opt/pyinit \
 && /opt/pyinit/bin/pip install --no-index --find-links /tmp/wheelhouse --no-cache-dir pyinit \
 && /opt/pyinit/bin/python -m compileall -q /opt/pyinit/lib \
 && rm -rf /tmp/wheelhouse /root/.cache
ENV PATH=/opt/pyinit/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["pyinit", "--"]
CMD ["sh"]
