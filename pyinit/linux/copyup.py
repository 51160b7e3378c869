"""``tmpcopyup``: a tmpfs that starts with a copy of the directory it covers.

The directory is opened before the tmpfs is mounted: that fd keeps showing
what is underneath (kernel-facts, trap 8), so the copy goes fd to fd, with
no path looked up again. Files, directories, symlinks and FIFOs keep their
mode, owner and times. Device nodes are **not** copied (runc and crun copy
them and rely on the device cgroup): the image's nodes sit on the root,
which is nodev, and a copy on a tmpfs that is not nodev (``/dev``) would make
them usable wherever no device rule applies. They are returned by name, for
the log. Sockets have no meaning in a copy and are skipped silently.
"""

from __future__ import annotations

import os
import stat

_CHUNK = 1 << 20


def _meta(st: os.stat_result, name: str, dir_fd: int) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def copy_tree(src_fd: int, dst_fd: int, prefix: str = "") -> tuple[int, list[str]]:
    """Copy the contents of directory ``src_fd`` into ``dst_fd``.

    Returns the number of entries copied and the paths (relative, under
    ``prefix``) of the device nodes left out.
    """
    count = 0
    skipped: list[str] = []
    for entry in sorted(os.scandir(src_fd), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            sub_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=src_fd)
            sub_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dst_fd)
            try:
                copied, left = copy_tree(sub_src, sub_dst, f"{prefix}{name}/")
                count += copied
                skipped += left
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        elif stat.S_ISREG(mode):
            src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
            try:
                dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600, dir_fd=dst_fd)
                try:
                    while chunk := os.read(src, _CHUNK):
                        os.write(dst, chunk)
                finally:
                    os.close(dst)
            finally:
                os.close(src)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=dst_fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            skipped.append(prefix + name)
            continue
        else:
            continue  # sockets have no meaning in a copy
        _meta(st, name, dst_fd)
        count += 1
    return count, skipped
