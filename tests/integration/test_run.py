"""``pyinit run``: real OCI bundles on a busybox-static root filesystem.

The root has no Python: that pyinit works in it at all proves it imported
everything before pivot_root. The autouse fixture in conftest.py checks after
every test that the host's mount table is byte for byte what it was and that
no process is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit.oci.seccomp_default import default_profile
from tests.conftest import PYINIT, event, events

pytestmark = pytest.mark.root

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
EXIT_SETUP_FAILED = 125


def make_bundle(path: Path, script: str, **changes: Any) -> Path:
    rootfs = path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:  # relative links: they must work inside the root
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    subprocess.run([PYINIT, "spec", "--bundle", str(path)], check=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg["process"]["args"] = ["sh", "-c", script]
    for key, value in changes.items():
        cfg[key] = value
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def edit(bundle: Path, fn: Any) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    fn(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))


def run_bundle(bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYINIT, "run", "--bundle", str(bundle), *extra],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def fields(ev: dict[str, Any]) -> dict[str, Any]:
    """A log event without its timestamp, to be compared whole."""
    return {k: v for k, v in ev.items() if k != "timestamp"}


def mountinfo_of(out: str) -> dict[str, str]:
    """mount point -> 'options - fstype' from a workload's /proc/self/mountinfo."""
    table = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 6 and " - " in line:
            pre, post = line.split(" - ", 1)
            table[pre.split()[4]] = f"{pre.split()[5]} - {post.split()[0]}"
    return table


# ------------------------------------------------------------------ the default bundle

def test_default_spec_bundle(tmp_path: Path) -> None:
    # ls /proc/$$/fd is a simple command: in a pipeline the shell itself would
    # still hold the pipe's read end while ls looks (busybox ash forks the
    # reader after the writer), a race the test once lost with a phantom fd 3.
    script = ("echo host=$(hostname); cat /proc/self/mountinfo; echo ---; ls -ln /dev; echo ---;"
              " grep -E '^(Cap|NoNewPrivs|Uid|Gid)' /proc/self/status; ulimit -n; umask;"
              " echo fds:; ls /proc/$$/fd; echo pid=$$; exit 7")
    bundle = make_bundle(tmp_path, script)
    assert not list((bundle / "rootfs").rglob("python*"))  # no Python in there
    res = run_bundle(bundle)
    assert res.returncode == 7, res.stderr
    out = res.stdout
    assert out.startswith("host=pyinit\n")
    assert out.endswith("\npid=2\n")  # pyinit is PID 1, the workload 2
    mounts, devices, rest = out.split("---\n")
    table = mountinfo_of(mounts)
    assert table["/"].startswith("ro,")  # root.readonly
    assert table["/proc"].endswith("- proc")
    assert table["/sys"].startswith("ro,nosuid,nodev,noexec") and table["/sys"].endswith("sysfs")
    assert table["/dev"].endswith("- tmpfs") and table["/dev/pts"].endswith("- devpts")
    assert table["/dev/shm"].startswith("rw,nosuid,nodev,noexec")
    assert table["/dev/mqueue"].endswith("- mqueue")
    assert table["/sys/fs/cgroup"].startswith("ro,")
    for path in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"):
        if os.path.exists(path):  # this kernel may lack some (no sysrq here): skipped
            assert table[path].startswith("ro,"), path  # readonlyPaths
        else:
            assert path not in table
    for path in ("/proc/acpi", "/sys/firmware"):
        assert table[path].endswith("- tmpfs") and table[path].startswith("ro,")  # masked dirs
    assert table["/proc/keys"].endswith("- tmpfs")  # masked file: /dev/null bound over it
    for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7),
                                 "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}.items():
        line = next(x for x in devices.splitlines() if x.endswith(f" {name}"))
        assert line.startswith("crw-rw-rw-") and f"{major},{' ' * (4 - len(str(minor)))}{minor}" \
            in line, line
    assert "ptmx -> pts/ptmx" in devices and "fd -> /proc/self/fd" in devices
    assert "stdin -> /proc/self/fd/0" in devices
    status_lines, after = rest.split("fds:\n")
    status = dict(line.split(":\t", 1) for line in status_lines.splitlines()[:-2])
    three = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    for kind in ("CapBnd", "CapEff", "CapPrm"):
        assert int(status[kind], 16) == three, (kind, status)
    assert int(status["CapInh"], 16) == int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Uid"].split() == status["Gid"].split() == ["0"] * 4
    assert status_lines.splitlines()[-2:] == ["1024", "0022"]  # RLIMIT_NOFILE, umask
    assert after.splitlines() == ["0", "1", "2", "pid=2"]  # nothing leaked into the workload
    assert event(res.stderr, "rootfs.ready")["steps"] > 30
    # pyinit's own default config asks for nothing pyinit would skip with a warning.
    assert [e for e in events(res.stderr) if e["level"] != "info"] == []


def test_process_user_env_cwd_rlimits_umask(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "id; grep -E '^(Uid|Gid|Groups):' /proc/self/status; pwd;"
                         " echo FOO=$FOO; ulimit -n; ulimit -Hn; umask")

    def change(cfg: dict[str, Any]) -> None:
        proc = cfg["process"]
        proc["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027}
        proc["cwd"] = "/work/dir"
        proc["env"].append("FOO=bar baz")
        proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=1001 groups=5,7"
    # Real, effective, saved and filesystem IDs, and exactly these groups.
    assert [x.split() for x in lines[1:4]] == [["Uid:", "1000", "1000", "1000", "1000"],
                                              ["Gid:", "1001", "1001", "1001", "1001"],
                                              ["Groups:", "5", "7"]]
    assert lines[4:] == ["/work/dir", "FOO=bar baz", "100", "200", "0027"]
    assert (bundle / "rootfs" / "work" / "dir").is_dir()


def test_pid1_takes_the_workloads_ids_real_effective_saved_and_fs(tmp_path: Path) -> None:
    """After lock_down, every thread of PID 1 is process.user in all four uid and gid
    fields (real, effective, saved, filesystem): a saved uid 0 would let it setuid(0)
    back. Read by the workload, which runs only once PID 1 is locked down."""
    bundle = make_bundle(tmp_path, "for t in /proc/1/task/*; do grep -E '^(Uid|Gid|Groups):'"
                         " $t/status; done")
    edit(bundle, lambda c: c["process"].update(user={"uid": 1234, "gid": 2345,
                                                     "additionalGids": [7]}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == ["Uid:\t1234\t1234\t1234\t1234", "Gid:\t2345\t2345\t2345\t2345",
                         "Groups:\t7 "]
    assert lines == lines[:3] * (len(lines) // 3)  # every thread alike


@pytest.mark.parametrize("readonly", [True, False])
@pytest.mark.parametrize("propagation", [None, "private", "slave", "shared", "unbindable"])
def test_root_readonly_and_propagation(tmp_path: Path, readonly: bool,
                                       propagation: str | None) -> None:
    bundle = make_bundle(tmp_path, "touch /probe 2>/dev/null && echo writable || echo readonly;"
                         " awk '$5 == \"/\"' /proc/self/mountinfo")

    def change(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = readonly
        if propagation:
            cfg["linux"]["rootfsPropagation"] = propagation
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    first, root_line = res.stdout.splitlines()
    assert first == ("readonly" if readonly else "writable")
    optional = root_line.split(" - ")[0].split()[6:]  # mountinfo's optional fields
    if propagation == "shared":
        assert len(optional) == 1 and optional[0].startswith("shared:"), root_line
    elif propagation == "unbindable":
        assert optional == ["unbindable"], root_line
    elif propagation == "private":
        assert optional == [], root_line
    else:  # slave, the default: receives the host's mounts (if / is shared), sends none
        assert not any(f.startswith("shared:") for f in optional), root_line
        if _host_root_is_shared():
            assert any(f.startswith("master:") for f in optional), root_line
        else:  # a slave of a private mount is just private (this VM has no systemd)
            assert optional == [], root_line


def _host_root_is_shared() -> bool:
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split(" - ")[0].split()
            if fields[4] == "/":
                return any(f.startswith("shared:") for f in fields[6:])
    return False


def test_bind_mounts_with_flags(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    bundle = make_bundle(tmp_path, "cat /mnt/data/hello /etc/single.txt;"
                         " touch /mnt/data/x 2>/dev/null || echo ro-ok;"
                         " grep -E ' /mnt/data | /etc/single.txt ' /proc/self/mountinfo")

    def change(cfg: dict[str, Any]) -> None:
        cfg["mounts"] += [
            {"destination": "/mnt/data", "type": "bind", "source": str(data),
             "options": ["rbind", "ro", "nosuid", "nodev"]},
            {"destination": "/etc/single.txt", "source": str(single), "options": ["bind"]},
        ]
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[:3] == ["hi", "one file", "ro-ok"]
    table = mountinfo_of("\n".join(out[3:]))
    assert set(table) == {"/mnt/data", "/etc/single.txt"}
    assert table["/mnt/data"].split(",")[:3] == ["ro", "nosuid", "nodev"]
    assert table["/etc/single.txt"].startswith("rw,")  # no ro: a read-only root is not inherited
    assert (bundle / "rootfs" / "etc" / "single.txt").is_file()  # created as a file


def test_tmpfs_keeps_the_mode_of_an_existing_directory(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "stat -c %a /keep /fresh /given")
    (bundle / "rootfs" / "keep").mkdir(mode=0o711)
    os.chmod(bundle / "rootfs" / "keep", 0o711)
    edit(bundle, lambda cfg: cfg["mounts"].extend(
        {"destination": d, "type": "tmpfs", "source": "tmpfs", "options": opts}
        for d, opts in (("/keep", []), ("/fresh", []), ("/given", ["mode=1777"]))))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["711", "1777", "1777"]


# ------------------------------------------------------------------ bad input: one line, 125

def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == EXIT_SETUP_FAILED, (res.returncode, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def _known_filesystems() -> str:
    """What the kernel offers, as the unknown-filesystem hint lists it."""
    lines = Path("/proc/filesystems").read_text().splitlines()
    return ", ".join(sorted({line.split()[-1] for line in lines if line.strip()}))


def test_malformed_json(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2",')
    assert _one_line(run_bundle(bundle)) == (
        "pyinit: config.json: not valid JSON: Expecting property name enclosed "
        "in double quotes at line 1 column 24")
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, check=False)
    assert (check.returncode, check.stdout) == (1, (
        "config.json: not valid JSON: Expecting property name enclosed in double quotes at "
        "line 1 column 24\n"))


def test_missing_config_json(tmp_path: Path) -> None:
    res = run_bundle(tmp_path)
    assert _one_line(res) == f"pyinit: config.json: {tmp_path}/config.json does not exist"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda c: c["mounts"][0].update(destination="proc"),
         "mounts[0].destination: must be an absolute path, not 'proc'"),
        (lambda c: c["root"].update(path="no-such-rootfs"),
         "root.path: {bundle}/no-such-rootfs is not a directory"),
        (lambda c: c["mounts"].append({"destination": "/", "type": "tmpfs", "source": "x"}),
         "mounts[7].destination: nothing may be mounted on top of /"),
        (lambda c: c["process"].update(args=[]),
         "process.args: must name a program (at least one entry)"),
        (lambda c: c["mounts"][0].update(options=["tmpcopyup"]),
         "mounts[0].options[0]: tmpcopyup only applies to tmpfs mounts"),
        (lambda c: c["mounts"][0].update(options=["ridmap"]),
         "mounts[0].options[0]: idmapped mounts are not supported by pyinit yet"),
        (lambda c: c["linux"]["namespaces"].append({"type": "user"}),
         "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"),
        (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
         "process.rlimits[0].type: unknown resource limit 'RLIMIT_BOGUS'"),
        (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"),
         "process.capabilities.bounding[3]: unknown capability 'CAP_NOPE'"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, mutate: Any, problem: str) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, mutate)
    problem = problem.format(bundle=bundle)
    assert _one_line(run_bundle(bundle)) == f"pyinit: config.json: {problem}"
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, check=False)
    assert (check.returncode, check.stdout, check.stderr) == (1, problem + "\n", "")


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"destination": "/x", "type": "nosuchfs", "source": "none"},
         "mounts[7]: mount (/x): nosuchfs none on /x: No such device; the kernel does not know "
         "the filesystem type 'nosuchfs'; it offers: {known}"),
        ({"destination": "/x", "source": "/no/such/source", "options": ["bind"]},
         "mounts[7]: mount (/x): the bind source /no/such/source does not exist; the source is "
         "missing: /no does not exist"),
        ({"destination": "/proc/self", "source": "/tmp", "options": ["bind"]},
         "mounts[7]: mount (/proc/self): mounts under /proc are refused (only runc's lxcfs "
         "allowlist is accepted)"),
        ({"destination": "/proc", "source": "/tmp", "options": ["rbind"]},
         "mounts[7]: mount (/proc): only a fresh proc may be mounted on /proc; use type proc, "
         "or drop this mount"),
    ],
)
def test_failing_mount_unwinds(tmp_path: Path, mount: dict[str, Any], message: str) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    edit(bundle, lambda c: c["mounts"].append(mount))
    res = run_bundle(bundle)
    assert _one_line(res) == "pyinit: " + message.format(known=_known_filesystems())
    assert res.stdout == ""  # the workload never ran


def test_device_conflict(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, lambda c: c["linux"].update(devices=[
        {"type": "c", "path": "/dev/null", "major": 1, "minor": 5, "fileMode": 438}]))
    assert _one_line(run_bundle(bundle)) == \
        "pyinit: device: /dev/null exists and is not the device c 1:5"


# ------------------------------------------------------------------ path safety

@pytest.mark.parametrize("name", ["proc", "sys"])
def test_symlinked_proc_or_sys_is_refused(tmp_path: Path, name: str) -> None:
    bundle = make_bundle(tmp_path, "true")
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (bundle / "rootfs" / name).symlink_to(decoy)
    where, fstype = {"proc": ("mounts[0]", "proc"), "sys": ("mounts[5]", "sysfs")}[name]
    assert _one_line(run_bundle(bundle)) == (
        f"pyinit: {where}: mount (/{name}): {fstype} must be mounted on an ordinary directory, "
        f"and /{name} is a symlink that points to {decoy} in the image; a symlinked /proc or "
        "/sys could send the mount outside the container (CVE-2019-19921); fix the image")
    assert list(decoy.iterdir()) == []


def test_bind_through_a_symlink_out_of_the_root_lands_inside(tmp_path: Path) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    bundle = make_bundle(tmp_path, "ls /escape/inner")
    (bundle / "rootfs" / "escape").symlink_to(host_dir)  # absolute: a host path
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/escape/inner", "source": str(src), "options": ["bind"]}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["f"]
    assert list(host_dir.iterdir()) == []  # the host directory was not touched
    inside = bundle / "rootfs" / str(host_dir).lstrip("/") / "inner"
    assert inside.is_dir()


def test_dev_symlink_to_a_host_directory_touches_nothing_there(tmp_path: Path) -> None:
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    (host_dir / "ptmx").write_text("marker")
    bundle = make_bundle(tmp_path, "readlink /dev; stat -c %F /dev/ptmx /dev/null;"
                         f" awk '$5 == \"{host_dir}\" {{print $9}}' /proc/self/mountinfo")
    (bundle / "rootfs" / "dev").symlink_to(host_dir)
    res = run_bundle(bundle)
    # The symlink is followed inside the root: /dev's tmpfs and devices are
    # at rootfs/<host_dir>, where the container's /dev leads too.
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(host_dir), "symbolic link", "character special file",
                                       "tmpfs"]
    assert (bundle / "rootfs" / str(host_dir).lstrip("/")).is_dir()
    assert sorted(p.name for p in host_dir.iterdir()) == ["ptmx"]
    assert (host_dir / "ptmx").read_text() == "marker"


def _dev_from_the_image(bundle: Path) -> Path:
    """No tmpfs on /dev: the image's own /dev is used; returns it."""
    dev = bundle / "rootfs" / "dev"
    dev.mkdir()
    edit(bundle, lambda c: c.update(mounts=[m for m in c["mounts"]
                                           if m["destination"] != "/dev"]))
    return dev


def test_masking_with_a_symlinked_dev_null_is_refused(tmp_path: Path) -> None:
    # The image's /dev/null points at a procfs file.
    bundle = make_bundle(tmp_path, "true")
    (_dev_from_the_image(bundle) / "null").symlink_to("/proc/sysrq-trigger")
    assert _one_line(run_bundle(bundle)) == \
        "pyinit: device: /dev/null exists and is not the device c 1:3"


def test_masking_a_file_without_a_dev_null_fails_closed(tmp_path: Path) -> None:
    # An empty read-only /dev: no /dev/null to mask /proc/keys with. pyinit run
    # refuses to start rather than leave the mask out (the sandbox uses an empty file).
    bundle = make_bundle(tmp_path, "cat /proc/keys")
    (tmp_path / "emptydev").mkdir()
    edit(bundle, lambda c: c.update(mounts=[
        *(m for m in c["mounts"] if m["destination"] != "/dev"),
        {"destination": "/dev", "type": "bind", "source": str(tmp_path / "emptydev"),
         "options": ["rbind", "ro"]}]))
    edit(bundle, lambda c: c["linux"].update(maskedPaths=["/proc/acpi", "/proc/keys"]))
    res = run_bundle(bundle)
    assert _one_line(res) == (
        "pyinit: linux.maskedPaths[1]: mask (/proc/keys): the container has no /dev/null, "
        "so it cannot mask files; mount a tmpfs on /dev (pyinit makes /dev/null there) or "
        "put the char device 1:3 at /dev/null in the image")
    assert res.stdout == ""


def test_cwd_through_a_magic_link_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "pwd")
    edit(bundle, lambda c: c["process"].update(cwd="/proc/self/fd/3"))
    assert _one_line(run_bundle(bundle)) == (
        "pyinit: process.cwd: cwd (/proc/self/fd/3): process.cwd /proc/self/fd/3 cannot be a "
        "directory inside the root: Too many levels of symbolic links; it must be a real "
        "directory path; magic links such as /proc/self/fd/N are refused")


# ------------------------------------------------------------------ signals and logs

def test_sigterm_reaches_the_workload_through_both_processes(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "trap 'echo got-term; exit 3' TERM; echo ready;"
                         " while :; do sleep 0.05; done")
    proc = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(15)
    out, err = proc.communicate(timeout=30)
    assert out == "got-term\n"
    assert proc.returncode == 3, err


def test_every_step_is_logged(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    res = run_bundle(bundle, "--log-level", "debug", "--log-format", "json")
    assert res.returncode == 0, res.stderr
    names = [json.loads(x)["event"] for x in res.stderr.splitlines() if x.startswith("{")]
    for kind in ("propagation", "rootfs", "mount", "device", "ptmx", "symlink", "hostname",
                 "pivot", "readonly", "mask"):
        assert f"{kind}.started" in names and f"{kind}.done" in names, kind
    mount = next(json.loads(x) for x in res.stderr.splitlines()
                 if x.startswith("{") and '"mount.done"' in x and '"/sys"' in x)
    assert mount["flags"] == "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC" and mount["fstype"] == "sysfs"
    assert mount["resolved"] == str(bundle / "rootfs" / "sys")


def test_failure_is_logged_with_its_context(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/x", "type": "nosuchfs", "source": "none", "options": ["nosuid"]}))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == EXIT_SETUP_FAILED
    assert fields(event(res.stderr, "mount.failed")) == {
        "event": "mount.failed", "level": "error", "step": "nosuchfs none on /x MS_NOSUID",
        "where": "mounts[7]", "destination": "/x", "source": "none", "fstype": "nosuchfs",
        "flags": "MS_NOSUID", "data": "", "errno": "ENODEV",
        "reason": "nosuchfs none on /x MS_NOSUID: No such device",
        "hint": "the kernel does not know the filesystem type 'nosuchfs'; it offers: "
                + _known_filesystems()}
    assert stat.S_ISDIR(os.stat(bundle / "rootfs").st_mode)


@pytest.mark.parametrize("propagation", [None, "shared", "rshared"])
def test_mounts_in_the_container_never_reach_a_shared_host(tmp_path: Path,
                                                           propagation: str | None) -> None:
    """A host (here a throw-away mount namespace) whose / is shared, as under systemd."""
    # Two FIFOs in the root: the workload writes "ready" into one once its
    # probe is mounted; the host side looks, then opens "go" to let it finish.
    # Should pyinit end before that, the subshell wakes the reader of "ready"
    # with an empty read (an O_RDWR open of a FIFO never blocks).
    bundle = make_bundle(tmp_path, "mkdir -p /mnt && mount -t tmpfs leak-probe /mnt;"
                         " echo mounted=$?; echo ready > /ready; cat /go")

    def change(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        for kind in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")
        # The default seccomp profile follows the capabilities: mount is back.
        cfg["linux"]["seccomp"] = default_profile(cfg["process"]["capabilities"]["bounding"])
        if propagation:
            cfg["linux"]["rootfsPropagation"] = propagation
    edit(bundle, change)
    rootfs = bundle / "rootfs"
    for fifo in ("ready", "go"):
        os.mkfifo(rootfs / fifo)
    script = (f"mount --make-rshared / && ({PYINIT} run --bundle {bundle}; s=$?;"
              f" : <> {rootfs}/ready; exit $s) & read -r what < {rootfs}/ready;"
              " echo seen=$(grep -c leak-probe /proc/self/mountinfo);"
              f" if [ \"$what\" = ready ]; then : > {rootfs}/go; fi; wait $!; echo pyinit=$?")
    res = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    # The probe was really mounted inside, and the host never saw it.
    assert res.stdout == "mounted=0\nseen=0\npyinit=0\n", res.stderr


# ------------------------------------------------------------------ pre/post commands, hooks

def _sh(script: str, **extra: Any) -> dict[str, Any]:
    return {"path": "/bin/sh", "args": ["sh", "-c", script], **extra}


def test_mount_commands_run_around_their_mount(tmp_path: Path) -> None:
    order = tmp_path / "order"
    bundle = make_bundle(tmp_path, "cat /data/made-after")
    rootfs = bundle / "rootfs"
    edit(bundle, lambda c: c["mounts"].append({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "io.pyinit.premount": [
            _sh(f"echo pre1 >> {order}; echo to-stdout; echo to-stderr >&2", timeout=10),
            _sh(f"echo pre2 >> {order}; [ ! -e {rootfs}/data/made-after ]"),
        ],
        "io.pyinit.postmount": [_sh(f"echo post >> {order}; echo hi > {rootfs}/data/made-after",
                                    env=["ONLY=this"], cwd="/")],
    }))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi\n"  # the post command wrote into the new tmpfs
    assert order.read_text().split() == ["pre1", "pre2", "post"]
    outputs = [json.loads(x) for x in res.stderr.splitlines()
               if x.startswith("{") and '"command.output"' in x]
    assert {(o["stream"], o["line"], o["destination"], o["phase"]) for o in outputs} == {
        ("stdout", "to-stdout", "/data", "before"), ("stderr", "to-stderr", "/data", "before")}


def test_failing_command_aborts_with_its_status_and_output(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    edit(bundle, lambda c: c["mounts"].append({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "io.pyinit.premount": [_sh("echo first; echo 'it broke' >&2; exit 3")]}))
    res = run_bundle(bundle)
    head, tail = _one_line(res).split("; last output: ")
    assert head == ("pyinit: mounts[7].io.pyinit.premount[0]: command (/data): \"sh -c echo "
                    "first; echo 'it broke' >&2; exit 3\" exited 3")
    # In the order the lines arrived, which between two pipes is not defined.
    assert sorted(tail.split(" | ")) == ["stderr: it broke", "stdout: first"]
    assert res.stdout == ""


def test_command_timeout_aborts(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    edit(bundle, lambda c: c["mounts"].append({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "io.pyinit.postmount": [_sh("echo started; exec sleep 600", timeout=0.5)]}))
    res = run_bundle(bundle)  # its own 60 s timeout would fire if the 0.5 s one did not
    assert _one_line(res) == (
        "pyinit: mounts[7].io.pyinit.postmount[0]: command (/data): 'sh -c echo started; exec "
        "sleep 600' was killed after its timeout of 0.5s; last output: stdout: started")
    assert res.stdout == ""


@pytest.mark.parametrize(("bad", "problem"), [
    ({"args": ["x"]}, "path: is required"),
    ({"path": "relative"}, "path: must be an absolute path, not 'relative'"),
    ({"path": "/bin/sh", "timeout": 0}, "timeout: must be a positive number of seconds"),
])
def test_malformed_command_is_a_config_error(tmp_path: Path, bad: dict[str, Any],
                                             problem: str) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, lambda c: c["mounts"][0].update({"io.pyinit.premount": [bad]}))
    assert _one_line(run_bundle(bundle)) == \
        f"pyinit: config.json: mounts[0].io.pyinit.premount[0].{problem}"


def test_oci_hooks_run_in_order_with_the_state(tmp_path: Path) -> None:
    log = tmp_path / "hooks"
    bundle = make_bundle(tmp_path, "echo workload >> /hooks-in-container")

    def hooks(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        cfg["hooks"] = {kind: [_sh(f"read -r state; echo \"{kind} $state\" >> {log}")]
                        for kind in ("createRuntime", "createContainer", "poststart",
                                     "poststop")}
        # startContainer runs inside the container: its path is the container's.
        cfg["hooks"]["startContainer"] = [_sh("echo startContainer >> /hooks-in-container")]
    edit(bundle, hooks)
    res = run_bundle(bundle, "--id", "box1")
    assert res.returncode == 0, res.stderr
    lines = log.read_text().splitlines()
    assert [x.split()[0] for x in lines] == ["createRuntime", "createContainer", "poststart",
                                             "poststop"]
    states = [json.loads(x.split(" ", 1)[1]) for x in lines]
    assert [s["status"] for s in states] == ["creating", "created", "running", "stopped"]
    assert {s["id"] for s in states} == {"box1"} and {s["bundle"] for s in states} == {
        str(bundle)}
    assert len({s["pid"] for s in states}) == 1 and states[0]["pid"] > 1
    inside = (bundle / "rootfs" / "hooks-in-container").read_text().split()
    assert inside == ["startContainer", "workload"]


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "startContainer"])
def test_failing_setup_hook_stops_everything(tmp_path: Path, kind: str) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    edit(bundle, lambda c: c.update(hooks={kind: [_sh("echo nope >&2; exit 4")]}))
    res = run_bundle(bundle)
    assert _one_line(res) == (f"pyinit: hooks.{kind}[0]: hook: 'sh -c echo nope >&2; exit 4' "
                              "exited 4; last output: stderr: nope")
    assert res.stdout == ""


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
def test_failing_late_hook_only_warns(tmp_path: Path, kind: str) -> None:
    bundle = make_bundle(tmp_path, "exit 6")
    edit(bundle, lambda c: c.update(hooks={kind: [_sh("exit 1")]}))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 6
    assert fields(event(res.stderr, "hook.failed")) == {
        "event": "hook.failed", "level": "error", "kind": kind, "where": f"hooks.{kind}[0]",
        "reason": "'sh -c exit 1' exited 1; no output"}


# ------------------------------------------------------------------ sysctl, devices, stdio

def test_sysctls_are_set_inside_only(tmp_path: Path) -> None:
    before = Path("/proc/sys/kernel/shmmni").read_text()
    bundle = make_bundle(tmp_path, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni")
    edit(bundle, lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1",
                                                     "kernel.shmmni": "1234"}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "1234"]
    assert Path("/proc/sys/kernel/shmmni").read_text() == before


@pytest.mark.parametrize(("sysctl", "namespaces", "message"), [
    ({"kernel.pid_max": "100"}, None,
     "linux.sysctl.kernel.pid_max: is not a namespaced sysctl; setting it would change the host"),
    # Without a network namespace, the namespace list itself is a problem too.
    ({"net.ipv4.ip_forward": "1"}, ["pid", "mount"],
     "linux.sysctl.net.ipv4.ip_forward: needs a new network namespace in linux.namespaces "
     "(and 1 more; see pyinit check)"),
])
def test_sysctl_validation(tmp_path: Path, sysctl: dict[str, str], namespaces: list[str] | None,
                           message: str) -> None:
    bundle = make_bundle(tmp_path, "true")

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = sysctl
        if namespaces:
            cfg["linux"]["namespaces"] = [{"type": t} for t in namespaces]
    edit(bundle, change)
    assert _one_line(run_bundle(bundle)) == f"pyinit: config.json: {message}"


def test_sysctl_is_not_written_through_something_mounted_over_proc(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    rootfs = bundle / "rootfs"
    # After /proc is mounted, a command lays a tmpfs with a look-alike file over it.
    fake = f"mount -t tmpfs fake {rootfs}/proc/sys/net/ipv4 && echo 0 > {rootfs}" \
           "/proc/sys/net/ipv4/ip_forward"

    def change(cfg: dict[str, Any]) -> None:
        cfg["mounts"][0]["io.pyinit.postmount"] = [_sh(fake)]
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    edit(bundle, change)
    assert _one_line(run_bundle(bundle)) == (
        "pyinit: sysctl: /proc/sys/net/ipv4/ip_forward is not on a procfs; something is mounted "
        "over /proc/sys; refusing to write there (CVE-2025-52881)")


def test_configured_device_is_created_and_verified(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "ls -ln /dev/fuse /dev/sub/mine")
    edit(bundle, lambda c: c["linux"].update(devices=[
        {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o600,
         "uid": 0, "gid": 0},
        {"type": "c", "path": "/dev/sub/mine", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1000, "gid": 1001}]))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    fuse, mine = (line.split() for line in res.stdout.splitlines())
    # mode, links, uid, gid, "major,", minor ... path
    assert fuse[:6] + fuse[-1:] == ["crw-------", "1", "0", "0", "10,", "229", "/dev/fuse"]
    assert mine[:6] + mine[-1:] == ["crw-r-----", "1", "1000", "1001", "1,", "3",
                                    "/dev/sub/mine"]


def test_stdin_on_dev_null_is_reopened_on_the_containers(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "stat -L -c %d:%t:%T /proc/self/fd/0;"
                         " stat -c %d:%t:%T /dev/null")
    res = run_bundle(bundle)  # stdin is the host's /dev/null
    assert res.returncode == 0, res.stderr
    fd0, container_null = res.stdout.split()
    assert fd0 == container_null  # the container's node (its /dev tmpfs), char 1:3
    assert container_null.endswith(":1:3")
    host = os.stat("/dev/null")
    assert fd0.split(":")[0] != str(host.st_dev)


# ------------------------------------------------------------------ cgroups (hybrid here)

def _host_v1_hierarchies() -> set[str]:
    return {line.split(" - ")[0].split()[4].rsplit("/", 1)[1]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if " - cgroup " in line and " /sys/fs/cgroup/" in line}


@pytest.mark.parametrize("cgroupns", [True, False])
def test_cgroup_mount(tmp_path: Path, cgroupns: bool) -> None:
    bundle = make_bundle(tmp_path, "grep -E ' /sys/fs/cgroup' /proc/self/mountinfo;"
                         " mkdir /sys/fs/cgroup/x 2>/dev/null || echo cgroup-ro")
    if not cgroupns:
        edit(bundle, lambda c: c["linux"].update(
            namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    table = {line.split(" - ")[0].split()[4]: line for line in res.stdout.splitlines()
             if " - " in line}
    assert " - tmpfs " in table["/sys/fs/cgroup"] and res.stdout.endswith("\ncgroup-ro\n")
    host_unified = " /sys/fs/cgroup/unified " in Path("/proc/self/mountinfo").read_text()
    # Each of the host's hierarchies, and nothing else (the unified one on a hybrid host).
    expected = {f"/sys/fs/cgroup/{name}" for name in _host_v1_hierarchies()}
    assert set(table) == {"/sys/fs/cgroup", *expected,
                          *(["/sys/fs/cgroup/unified"] if host_unified else [])}
    for path in expected:
        line = table[path]
        assert " - cgroup " in line and line.split()[5].startswith("ro,"), line
    memory_root = table["/sys/fs/cgroup/memory"].split()[3]
    # With a cgroup namespace the hierarchy's root is the namespace's; without
    # one it is a bind of the container's own cgroup (docs/cgroups.md: the
    # default /pyinit/<bundle name>-<pid>-<random> without --id), never the host's whole tree.
    own = event(res.stderr, "cgroup.ready")["path"]
    assert re.fullmatch(rf"/pyinit/{re.escape(bundle.name)}-[0-9]+-[0-9a-f]{{8}}", own), own
    assert memory_root == ("/" if cgroupns else own)
    if host_unified:
        assert " - cgroup2 " in table["/sys/fs/cgroup/unified"]


# ------------------------------------------------------------------ user namespaces

def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, uid, gid)




@pytest.mark.parametrize("readonly", [False, True])
def test_user_namespace_with_mappings(reachable: Path, readonly: bool) -> None:
    bundle = make_bundle(reachable, "id; cat /proc/self/uid_map /proc/self/gid_map;"
                         " touch /made-inside 2>/dev/null || echo root-ro;"
                         " ls -ln /dev/null; grep -E ' /(proc|sys|dev/pts) ' /proc/self/mountinfo")

    def change(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = readonly
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    edit(bundle, change)
    _chown_tree(bundle / "rootfs", 100000, 100000)  # the rootfs belongs to the mapped root
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "uid=0 gid=0"  # and no supplementary group
    assert lines[1].split() == ["0", "100000", "65536"] == lines[2].split()
    assert ("root-ro" in lines) == readonly
    assert (bundle / "rootfs" / "made-inside").exists() != readonly
    if not readonly:
        assert (bundle / "rootfs" / "made-inside").stat().st_uid == 100000
    null = next(x for x in lines if x.endswith("/dev/null"))
    assert null.startswith("crw-rw-rw-") and "1,   3" in null  # the host's node, bound
    table = mountinfo_of(res.stdout)
    assert [table[p].split(" - ")[1] for p in ("/proc", "/sys", "/dev/pts")] == [
        "proc", "sysfs", "devpts"]


def test_mappings_without_a_user_namespace_are_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
        gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]))
    assert _one_line(run_bundle(bundle)) == ("pyinit: config.json: linux.uidMappings: mappings "
                                             "need a new user namespace in linux.namespaces")


def test_unreachable_rootfs_in_a_user_namespace_says_why(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")  # under pytest's 0700 directory

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    edit(bundle, change)
    _assert_eacces_hint(_one_line(run_bundle(bundle)), bundle)


def _assert_eacces_hint(line: str, bundle: Path) -> None:
    """The line names the first directory above the bundle that uid 100000 cannot search."""
    blocking = next(d for d in [*reversed(bundle.parents), bundle]
                    if not os.stat(d).st_mode & stat.S_IXOTH)  # 100000 is "other" for all
    mode = stat.S_IMODE(os.stat(blocking).st_mode)
    # The owner is not asserted: the hint is made inside the user namespace,
    # where root's directories show as the overflow ID (65534:65534).
    assert re.fullmatch(
        re.escape(f"pyinit: rootfs: mount the rootfs at {bundle}/rootfs: Permission denied; "
                  f"host uid 100000 (the container's root) cannot search {blocking} "
                  f"(mode {mode:o}, owner ") + r"\d+:\d+"
        + re.escape("): give that directory the x bit for it, or move the files"), line), line


def test_bad_mapping_fails_cleanly(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        # Overlapping ranges: the kernel refuses the map.
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10},
                                       {"containerID": 5, "hostID": 200000, "size": 10}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10}]
    edit(bundle, change)
    res = run_bundle(bundle)
    assert _one_line(res) == ("pyinit: linux.uidMappings: namespace: write uid_map: Invalid "
                              "argument; host IDs must exist and ranges must not overlap")
    assert res.stdout == ""


def test_joining_a_namespace_of_another_type_says_so(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    edit(bundle, lambda c: c["linux"].update(namespaces=[
        *(n for n in c["linux"]["namespaces"] if n["type"] != "uts"),
        {"type": "uts", "path": "/proc/self/ns/ipc"}]))
    res = run_bundle(bundle)
    assert _one_line(res) == ("pyinit: linux.namespaces (uts): namespace: setns "
                              "/proc/self/ns/ipc: Invalid argument; is it a namespace of that "
                              "type?")
    assert res.stdout == ""


def test_tmpcopyup_starts_with_a_copy_of_what_it_covers(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "ls -ln /etc/app; cat /etc/app/conf /etc/app/sub/deep;"
                         " readlink /etc/app/link; echo new > /etc/app/fresh && cat /etc/app/fresh;"
                         " grep ' /etc/app ' /proc/self/mountinfo")
    app = bundle / "rootfs" / "etc" / "app"
    (app / "sub").mkdir(parents=True)
    (app / "conf").write_text("from image\n")
    (app / "conf").chmod(0o604)  # readable without CAP_DAC_OVERRIDE, and distinctive
    os.chown(app / "conf", 1234, 5678)
    (app / "sub" / "deep").write_text("deep\n")
    (app / "link").symlink_to("conf")
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/etc/app", "type": "tmpfs", "source": "tmpfs",
         "options": ["tmpcopyup", "nosuid"]}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    conf = next(x.split() for x in out if x.endswith(" conf"))
    assert conf[:4] + conf[-1:] == ["-rw----r--", "1", "1234", "5678", "conf"]
    assert out[-5:-1] == ["from image", "deep", "conf", "new"]
    assert " - tmpfs " in out[-1] and out[-1].split()[4] == "/etc/app"
    assert (app / "conf").read_text() == "from image\n"  # the image itself is untouched
    assert not (app / "fresh").exists()  # the write went to the tmpfs


def test_no_pivot_hides_the_hosts_proc_and_sys(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "awk '$5 == \"/\" {print $4}' /proc/self/mountinfo; ls /;"
                         " cat /proc/1/cmdline | tr '\\0' ' '")
    res = run_bundle(bundle, "--no-pivot", "--log-level", "debug", "--log-format", "json")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == str(bundle / "rootfs")  # / is the rootfs, moved there
    assert "bin" in lines and "proc" in lines
    hidden = event(res.stderr, "nopivot.hidden")["mounts"]
    host = [line.split(" - ")[0].split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split(" - ")[1].split()[0] in ("proc", "sysfs")]
    assert "/proc" in hidden and "/sys" in hidden
    assert set(host) <= set(hidden)  # every host proc and sysfs, not just the obvious two
    assert event(res.stderr, "nopivot.done")


def test_rootless_spec_runs(reachable: Path) -> None:
    # Run as root here, the "rootless" bundle maps host root to root in a new
    # user namespace: it exercises the bound /sys and the one-ID mappings.
    bundle = reachable
    rootfs = make_bundle(bundle, "true") / "rootfs"
    (bundle / "config.json").unlink()
    subprocess.run([PYINIT, "spec", "--rootless", "--bundle", str(bundle)], check=True)
    edit(bundle, lambda c: c["process"].update(args=["sh", "-c", "cat /proc/self/uid_map;"
                                                     " grep ' /sys ' /proc/self/mountinfo"]))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split() == ["0", "0", "1"]
    assert mountinfo_of(res.stdout)["/sys"].startswith("ro,")
    assert rootfs.is_dir()


# ------------------------------------------------------------------ hints (issue 4)

def _hint(res: subprocess.CompletedProcess[str], step: str) -> tuple[str, dict[str, Any]]:
    """The one line on stderr and the failed event, which both carry the hint."""
    line = _one_line(res)
    failed = next(json.loads(x) for x in res.stderr.splitlines()
                  if x.startswith("{") and f'"{step}.failed"' in x)
    assert failed["hint"] and line.endswith(f"; {failed['hint']}"), (line, failed)
    return line, failed


def test_hint_unknown_filesystem_lists_the_known_ones(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, lambda c: c["mounts"].append({"destination": "/x", "type": "nosuchfs",
                                              "source": "none"}))
    line, failed = _hint(run_bundle(bundle, "--log-format", "json"), "mount")
    known = _known_filesystems()
    assert "tmpfs" in known.split(", ")  # the list is the kernel's, not a fixed one
    hint = f"the kernel does not know the filesystem type 'nosuchfs'; it offers: {known}"
    assert line == f"pyinit: mounts[7]: mount (/x): nosuchfs none on /x: No such device; {hint}"
    assert fields(failed) == {
        "event": "mount.failed", "level": "error", "step": "nosuchfs none on /x",
        "where": "mounts[7]", "destination": "/x", "source": "none", "fstype": "nosuchfs",
        "flags": "0", "data": "", "errno": "ENODEV",
        "reason": "nosuchfs none on /x: No such device", "hint": hint}


def test_hint_a_file_where_a_directory_is_needed(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    (bundle / "rootfs" / "etc").mkdir()
    (bundle / "rootfs" / "etc" / "conf").write_text("a file\n")
    edit(bundle, lambda c: c["mounts"].append({"destination": "/etc/conf/sub", "type": "tmpfs",
                                              "source": "tmpfs"}))
    line, failed = _hint(run_bundle(bundle, "--log-format", "json"), "mount")
    assert line == ("pyinit: mounts[7]: mount (/etc/conf/sub): tmpfs tmpfs on /etc/conf/sub: Not "
                    "a directory; /etc/conf is a file where the path needs a directory")
    assert failed["errno"] == "ENOTDIR"


def test_hint_file_onto_directory_and_back(tmp_path: Path) -> None:
    src_file = tmp_path / "file"
    src_file.write_text("x")
    src_dir = tmp_path / "dir"
    src_dir.mkdir()
    bundle = make_bundle(tmp_path, "true")
    (bundle / "rootfs" / "adir").mkdir()
    (bundle / "rootfs" / "afile").write_text("y")
    edit(bundle, lambda c: c["mounts"].append({"destination": "/adir", "source": str(src_file),
                                              "options": ["bind"]}))
    line, _ = _hint(run_bundle(bundle, "--log-format", "json"), "mount")
    assert line == (f"pyinit: mounts[7]: mount (/adir): bind {src_file} on /adir MS_BIND: Not a "
                    f"directory; the source {src_file} is a file and the destination /adir a "
                    "directory: mount a file onto a file, or a directory onto a directory")
    edit(bundle, lambda c: c["mounts"][-1].update(destination="/afile", source=str(src_dir)))
    line, _ = _hint(run_bundle(bundle, "--log-format", "json"), "mount")
    assert line == (f"pyinit: mounts[7]: mount (/afile): bind {src_dir} on /afile MS_BIND: Not a "
                    f"directory; the source {src_dir} is a directory and the destination /afile "
                    "is a file: mount a directory onto a directory")


def test_hint_symlink_refusal_says_where_it_points(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    (bundle / "rootfs" / "proc").symlink_to("/etc/fake-proc")
    assert _one_line(run_bundle(bundle)) == (
        "pyinit: mounts[0]: mount (/proc): proc must be mounted on an ordinary directory, and "
        "/proc is a symlink that points to /etc/fake-proc in the image; a symlinked /proc or "
        "/sys could send the mount outside the container (CVE-2019-19921); fix the image")


def test_hint_pivot_einval_on_a_shared_mount(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    # After the last mount, something makes the tree shared again: pivot_root refuses.
    edit(bundle, lambda c: c["mounts"][-1].update(
        {"io.pyinit.postmount": [_sh("mount --make-rshared /")]}))
    line, failed = _hint(run_bundle(bundle, "--log-format", "json"), "pivot")
    rootfs = bundle / "rootfs"
    assert failed["errno"] == "EINVAL"
    assert line == (f"pyinit: pivot: pivot_root into {rootfs}: Invalid argument; {rootfs} is a "
                    "shared mount (pivot_root refuses shared mounts; something made it shared "
                    "after pyinit made / rslave); use --no-pivot")


def _userns(cfg: dict[str, Any], net: bool = True) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    if not net:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_hint_sysfs_in_a_user_namespace_without_its_network_namespace(reachable: Path) -> None:
    bundle = make_bundle(reachable, "grep ' /sys ' /proc/self/mountinfo")
    edit(bundle, lambda c: _userns(c, net=False))
    _chown_tree(bundle / "rootfs", 100000, 100000)
    # Refused by the plan, before any namespace exists (pyinit check says the same).
    assert _one_line(run_bundle(bundle)) == (
        "pyinit: mounts[5]: mount (/sys): sysfs in a new user namespace needs a new network "
        "namespace, not the host's: the kernel mounts sysfs only for a network namespace "
        'that user namespace owns; add {"type": "network"} to linux.namespaces, bind /sys '
        "read-only, or run with --sysfs-fallback")
    # The fallback: the host's /sys, bound read-only.
    res = run_bundle(bundle, "--sysfs-fallback", "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert mountinfo_of(res.stdout)["/sys"].startswith("ro,")
    assert event(res.stderr, "mount.sysfs_fallback")["destination"] == "/sys"


def test_hint_proc_too_revealing_lists_the_covering_mounts(reachable: Path) -> None:
    bundle = make_bundle(reachable, "true")
    edit(bundle, lambda c: _userns(c))
    _chown_tree(bundle / "rootfs", 100000, 100000)
    # Part of the host's /proc is covered, outside the container's user
    # namespace (so the cover is locked there), as in a nested container.
    script = ("mount --make-rprivate / && mount -t tmpfs cover /proc/sys && "
              f"exec {PYINIT} run --bundle {bundle} --log-format json")
    res = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True,
                         text=True, timeout=60, check=False)
    line, failed = _hint(res, "mount")
    assert failed["fstype"] == "proc" and failed["errno"] == "EPERM"
    assert line == ("pyinit: mounts[0]: mount (/proc): proc proc on /proc: Operation not "
                    "permitted; a new proc needs a fully visible /proc in the mount namespace, "
                    "and the visible one has mounts on top of it: /proc/sys; unmount them, or "
                    "give the container a PID namespace it owns")


def test_hint_locked_flags(reachable: Path) -> None:
    src = reachable / "locked-src"
    src.mkdir()
    bundle = make_bundle(reachable, "true")

    def change(cfg: dict[str, Any]) -> None:
        _userns(cfg)
        cfg["mounts"].append({"destination": "/data", "source": str(src),
                              "options": ["rbind", "suid", "ro"]})
    edit(bundle, change)
    _chown_tree(bundle / "rootfs", 100000, 100000)
    # The source is mounted nosuid outside the container's user namespace.
    script = (f"mount --make-rprivate / && mount -t tmpfs -o nosuid,nodev src {src} && "
              f"exec {PYINIT} run --bundle {bundle} --log-format json")
    res = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True,
                         text=True, timeout=60, check=False)
    line, failed = _hint(res, "mount")
    assert failed["locked"] == "MS_NOSUID"
    # The flags are set on the detached bind (mount_setattr), before it is attached.
    assert line == (f"pyinit: mounts[7]: mount (/data): bind {src} on /data "
                    "MS_RDONLY|MS_BIND|MS_REC: Operation not permitted; "
                    "the source is mounted MS_NOSUID outside this user namespace, and such flags "
                    "are locked here: the config's options clear MS_NOSUID, which the kernel "
                    "refuses; drop those options (suid, dev, exec, ...) or remount the source on "
                    "the host")


def test_hint_eacces_names_the_directory(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")  # under pytest's 0700 directory
    edit(bundle, lambda c: _userns(c))
    _assert_eacces_hint(_one_line(run_bundle(bundle)), bundle)


def test_hint_no_cap_sys_admin(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    res = subprocess.run(
        ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", PYINIT, "run",
         "--bundle", str(bundle)], capture_output=True, text=True, timeout=60, check=False)
    # The first privileged step is the device cgroup (docs/cgroups.md), in the default
    # cgroup /pyinit/<bundle name>-<pid of pyinit>-<random>.
    line = _one_line(res)
    unique = re.sub(r"^.*/devices/pyinit/[^/]*-([0-9]+-[0-9a-f]{8})/devices\.deny: .*$",
                    r"\1", line)
    assert line == (
        "pyinit: linux.resources.devices: cgroup: write 'a' to /sys/fs/cgroup/devices/pyinit/"
        f"{bundle.name}-{unique}/devices.deny: Operation not permitted; pyinit runs without "
        "CAP_SYS_ADMIN (it is not in CapEff of /proc/self/status), as in an ordinary "
        "unprivileged container: give it the capability (podman/docker --cap-add SYS_ADMIN), "
        "run it in a user namespace it owns, or use a privileged container")
    assert re.fullmatch("[0-9]+-[0-9a-f]{8}", unique), line
    assert res.stdout == ""


def test_an_existing_correct_dev_symlink_is_accepted(tmp_path: Path) -> None:
    # /dev from the image (no tmpfs) already has the right symlinks: fine.
    bundle = make_bundle(tmp_path, "readlink /dev/fd")
    (_dev_from_the_image(bundle) / "fd").symlink_to("/proc/self/fd")
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "/proc/self/fd"


# Fills the mount namespace it runs in up to fs.mount-max, then frees exactly
# $2 mounts: blocks of 2^j mounts are built by rbind (block j+1 is block j
# bound twice), and the rest is the sum of a few blocks, so it takes a few
# dozen mount calls rather than 100000. The kernel's count of a namespace's
# mounts may include one that /proc/self/mountinfo does not show (the initial
# root below /), so the last few are found by mounting probes until ENOSPC.
_FILL_THE_MOUNT_TABLE = r"""
set -e
D=$1 free=$2
max=$(cat /proc/sys/fs/mount-max)
count() { wc -l < /proc/self/mountinfo; }
mount -t tmpfs fill "$D"
mkdir "$D/b0" "$D/probes"
mount -t tmpfs block "$D/b0"
mkdir "$D/b0/x"
j=0 size=1
while [ $((4 * size - 1)) -le $((max - 8 - $(count))) ]; do
  mkdir "$D/b$((j + 1))"
  mount --rbind "$D/b$j" "$D/b$((j + 1))"
  mount --rbind "$D/b$j" "$D/b$((j + 1))/x"
  j=$((j + 1)) size=$((size * 2))
done
avail=$((max - 8 - $(count)))
while [ $j -ge 0 ]; do
  if [ $avail -ge $size ]; then
    mkdir "$D/r$j"; mount --rbind "$D/b$j" "$D/r$j"; avail=$((avail - size))
  fi
  j=$((j - 1)) size=$((size / 2))
done
i=0
while mkdir "$D/probes/$i" && mount -t tmpfs probe "$D/probes/$i" 2>/dev/null; do i=$((i + 1)); done
[ $i -ge "$free" ] && [ $i -le 9 ]
while [ "$free" -gt 0 ]; do i=$((i - 1)) free=$((free - 1)); umount "$D/probes/$i"; done
echo "visible=$(count)"
"""


def test_hint_enospc_quotes_the_mount_limit(tmp_path: Path) -> None:
    # A real ENOSPC without touching fs.mount-max (a host-wide sysctl): the
    # limit is global, but the count is per mount namespace, so a throw-away
    # namespace is filled to one mount short of it. pyinit's own namespace is
    # a copy with as many mounts (copy_mnt_ns checks no limit); its rootfs bind
    # takes the last free one, and the next mount, proc on /proc, gets ENOSPC.
    bundle = make_bundle(tmp_path, "echo should-not-run")
    fill = tmp_path / "fill"
    fill.mkdir()
    (tmp_path / "fill.sh").write_text(_FILL_THE_MOUNT_TABLE)
    script = (f"sh {tmp_path / 'fill.sh'} {fill} 1 && "
              f"exec {PYINIT} run --bundle {bundle} --log-format json")
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=120, check=False)
    assert "visible=" in res.stdout, res.stderr  # the filler worked
    visible = int(res.stdout.split("visible=")[1].split()[0])
    line, failed = _hint(res, "mount")
    limit = int(Path("/proc/sys/fs/mount-max").read_text())
    assert {k: failed[k] for k in ("errno", "where", "destination", "fstype")} == {
        "errno": "ENOSPC", "where": "mounts[0]", "destination": "/proc", "fstype": "proc"}
    # pyinit sees the filler's mounts and its own rootfs bind (and not the one
    # below / that the kernel counts too: "99999 mounts here" with a limit of 100000).
    hint = (f"the mount table is full: {visible + 1} mounts here, and /proc/sys/fs/mount-max "
            f"is {limit}; raise it (sysctl fs.mount-max) or mount less")
    assert failed["hint"] == hint
    assert line == f"pyinit: mounts[0]: mount (/proc): proc proc on /proc: No space left on " \
        f"device; {hint}"
    assert "should-not-run" not in res.stdout
