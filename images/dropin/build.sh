#!/usr/bin/env bash
# Build the drop-in: build/dropin/opt/pyinit (pyinit and its own CPython, for
# images without Python) and build/dropin/pyinit-init (podman's --init-path
# shim). images/build.sh runs it; on its own it needs no podman:
#
#   images/dropin/build.sh [WHEELHOUSE]    # default: pip wheel of this checkout
#
# /opt/pyinit/
#   pyinit            CPython's interpreter with pyinit as its program
#                     (launcher.c, linked with the static libpython)
#   pyinit._pth       sys.path, relative to it: the three directories below
#   lib/              the C libraries, glibc's loader included; the ELF
#                     interpreter and rpath of pyinit point here
#   lib/python3.11/   the standard library (without its tests, IDLE, tkinter,
#                     lib2to3, distutils, ...), as .pyc files, and lib-dynload
#   lib/python3.11/site-packages/   pyinit, trio, structlog and their
#                     dependencies, sources and __pycache__
#
# Every module is compiled (unchecked-hash .pyc: valid whatever mtimes the
# image's layers give the files, and never rewritten). The directory needs
# nothing from the image it is copied into, as long as it sits at /opt/pyinit.
#
# Needs the interpreter's static library and headers (libpython3.11-dev),
# gcc, patchelf and libseccomp2 (tools/install.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf '[images/dropin/build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
python=${PYTHON:-.venv/bin/python}
out=build/dropin
dropin=$out/opt/pyinit

wheelhouse=${1:-}
if [ -z "$wheelhouse" ]; then
    wheelhouse=build/dropin-wheelhouse
    rm -rf "$wheelhouse"
    "$python" -m pip wheel -q --disable-pip-version-check -w "$wheelhouse" .
fi

# The interpreter the drop-in is made of: python's base installation.
eval "$("$python" - <<'EOF'
import shlex, sys, sysconfig
v = sysconfig.get_config_var
for name, value in (("version", v("VERSION")), ("stdlib", sysconfig.get_paths()["stdlib"]),
                    ("dynload", v("DESTSHARED")), ("include", sysconfig.get_paths()["include"]),
                    ("libpython", f'{v("LIBPL")}/{v("LIBRARY")}'),
                    ("ldflags", f'{v("LINKFORSHARED")} {v("MODLIBS")} {v("LIBS")} {v("SYSLIBS")}')):
    print(f"{name}={shlex.quote(value)}")
EOF
)"
[ -f "$libpython" ] && [ -f "$include/Python.h" ] ||
    { echo "$libpython and $include/Python.h are needed (libpython$version-dev)" >&2; exit 1; }
lib=$dropin/lib/python$version

log "the interpreter: CPython $version with pyinit as its program"
rm -rf "$out"
mkdir -p "$dropin/lib"
# Not a PIE: libpython.a is not position-independent, as for /usr/bin/python3.
# -export-dynamic: the extension modules link against its symbols.
# shellcheck disable=SC2086  # ldflags is a list of flags
gcc -O2 -no-pie -I"$include" -o "$dropin/pyinit" images/dropin/launcher.c "$libpython" $ldflags
strip "$dropin/pyinit"
printf '%s\n' "# sys.path of ./pyinit (CPython's getpath: home is this directory)" \
    "lib/python$version" "lib/python$version/lib-dynload" "lib/python$version/site-packages" \
    > "$dropin/pyinit._pth"

log "the standard library"
"$python" - "$stdlib" "$dynload" "$lib" <<'EOF'
import os, shutil, sys

stdlib, dynload, dest = sys.argv[1:]
# Never imported by pyinit, large, or needing C libraries the bundle leaves out
# (Tk, ncurses, readline, Berkeley DB, SQLite, NIS, libcrypt).
LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "venv",
            "lib2to3", "distutils", "pydoc_data", "curses", "dbm", "sqlite3", "crypt.py",
            "site-packages", "dist-packages", "lib-dynload",
            # Debian's: /etc's sitecustomize, pip's guard, distutils' scheme
            "sitecustomize.py", "EXTERNALLY-MANAGED", "_distutils_system_mod.py"}
EXTENSIONS_LEFT_OUT = ("_test", "xx", "_ctypes_test", "_curses", "_dbm", "_sqlite3", "nis.",
                       "readline.", "_crypt.", "_tkinter.")


def ignore(where: str, names: list[str]) -> set[str]:
    top = os.path.samefile(where, stdlib)
    return {n for n in names if n == "__pycache__" or n in ("test", "tests", "idle_test")
            or (top and (n in LEFT_OUT or n.startswith("config-")))}


shutil.copytree(stdlib, dest, ignore=ignore)
os.makedirs(f"{dest}/lib-dynload")
for name in sorted(os.listdir(dynload)):
    if name.endswith(".so") and not name.startswith(EXTENSIONS_LEFT_OUT):
        shutil.copy2(f"{dynload}/{name}", f"{dest}/lib-dynload/{name}")
EOF

log "pyinit, trio, structlog (from $wheelhouse)"
"$python" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheelhouse" \
    --no-compile --target "$lib/site-packages" pyinit
rm -rf "$lib/site-packages/bin" "$lib/site-packages/trio/_tests" \
    "$lib/site-packages/trio/_core/_tests" "$lib/site-packages/sniffio/_tests"

log "bytecode"
# Compiled as they will be found in the image (-s/-p: the names tracebacks
# show). The standard library as .pyc files in place of its sources (-b, as
# PyInstaller did): 10 MB less; pyinit and its dependencies keep theirs, for
# the source lines of their tracebacks.
"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash -b \
    -s "$dropin" -p /opt/pyinit -x '/site-packages/' "$lib"
find "$lib" -name '*.py' -type f -not -path "$lib/site-packages/*" -delete
"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$dropin" -p /opt/pyinit "$lib/site-packages"

log "the C libraries"
# What the interpreter and the extension modules link (glibc, libz, libssl,
# ...) go into /opt/pyinit/lib; the interpreter's ELF interpreter and rpath
# point there. awk reads to the end: an early exit would kill ldd or
# ldconfig with SIGPIPE, which pipefail turns into this script's status 141.
find "$dropin" -type f \( -name pyinit -o -name '*.so*' \) -print0 |
    xargs -0 ldd 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib64\// {print $1}' |
    sort -u | while read -r so; do
        install -D -m 0755 "$(readlink -f "$so")" "$dropin/lib/$(basename "$so")"
    done
# libseccomp is loaded with ctypes (pyinit/linux/seccomp.py), which ldd cannot see.
seccomp=$(ldconfig -p | awk '/libseccomp\.so\.2 / && !found {print $NF; found = 1}')
[ -n "$seccomp" ] || { echo "libseccomp.so.2 is needed (tools/install.sh)" >&2; exit 1; }
install -D -m 0755 "$(readlink -f "$seccomp")" "$dropin/lib/libseccomp.so.2"
command -v patchelf >/dev/null || { echo "patchelf is needed (tools/install.sh)" >&2; exit 1; }
patchelf --set-interpreter /opt/pyinit/lib/ld-linux-x86-64.so.2 --force-rpath \
    --set-rpath /opt/pyinit/lib "$dropin/pyinit"

# The one file podman run --init-path needs (see images/dropin/init-shim.c).
gcc -static -Os -o "$out/pyinit-init" images/dropin/init-shim.c
log "done: $dropin, $(du -sh "$dropin" | cut -f1)"
