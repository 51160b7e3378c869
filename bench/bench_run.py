"""``pyinit run`` against ``runc run`` (and crun, if it works here) on the same bundles.

usage: python bench/bench_run.py [--runs N] [--write docs/benchmarks.md]

The bundles are what ``runc spec`` writes (terminal off), on a busybox-static
root, with a static workload that prints CLOCK_REALTIME (bench/clock.c):
once as is, and with 50 and 200 extra tmpfs mounts. For each runtime and
bundle: the wall time of the whole run, and the time from the runtime's exec
to the workload's first instruction, as medians with min-max and as ratios
to runc in the same run; and the cost per extra mount.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("PYINIT_BENCH_WORK", "/tmp/pyinit-bench/run"))
EXTRA = (0, 50, 200)


def ensure_tools() -> None:
    missing = [p for p in ("runc", "busybox") if shutil.which(p) is None]
    if missing:
        pkgs = ["runc" if p == "runc" else "busybox-static" for p in missing]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def build_clock() -> Path:
    """bench/clock.c as a static binary (busybox's date has no %N)."""
    out = WORK / "clock"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(HERE / "clock.c")], check=True)
    return out


def make_bundle(extra: int, clock: Path) -> Path:
    bundle = WORK / f"bundle-{extra}"
    if bundle.exists():
        shutil.rmtree(bundle)
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split():
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    shutil.copy(clock, rootfs / "bin" / "clock")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/clock"]
    cfg["mounts"] += [{"destination": f"/mnt/m{i}", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "size=64k"]} for i in range(extra)]
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def runtimes(pyinit: str) -> dict[str, list[str]]:
    found = {
        "runc": ["runc", "run", "--bundle", "{bundle}", "{id}"],
        "pyinit": [pyinit, "run", "--bundle", "{bundle}", "--id", "{id}",
                   "--log-level", "error"],
    }
    if shutil.which("crun"):
        found["crun"] = ["crun", "run", "--bundle", "{bundle}", "{id}"]
    return found


def measure(cmd: list[str], bundle: Path, runs: int) -> tuple[list[float], list[float], str]:
    walls, firsts = [], []
    for i in range(runs):
        argv = [a.format(bundle=bundle, id=f"bench-{os.getpid()}-{i}") for a in cmd]
        t0 = time.time_ns()
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                             stdin=subprocess.DEVNULL)
        t1 = time.time_ns()
        if res.returncode != 0:
            return [], [], (res.stderr.strip().splitlines() or ["failed"])[-1][:120]
        walls.append((t1 - t0) / 1e6)
        firsts.append((int(res.stdout.split()[0]) - t0) / 1e6)
    return walls, firsts, ""


def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--pyinit", default=str(Path("/tmp/pyinit-bench/venv/bin/pyinit")))
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_run.py needs root", file=sys.stderr)
        return 2
    ensure_tools()
    if not Path(args.pyinit).exists():
        sys.path.insert(0, str(HERE))
        import bench

        args.pyinit = bench.ensure_pyinit()
    table = runtimes(args.pyinit)
    results: dict[tuple[str, int], tuple[list[float], list[float], str]] = {}
    clock = build_clock()
    for extra in EXTRA:
        bundle = make_bundle(extra, clock)
        for name, cmd in table.items():
            print(f"measuring {name} with {extra} extra mounts ...", file=sys.stderr)
            results[(name, extra)] = measure(cmd, bundle, args.runs)

    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; median "
        f"(min–max) of {args.runs} runs, in ms. Bundle: `runc spec` (terminal off) on a "
        "busybox-static root, workload a static `clock` (bench/clock.c) printing the time, "
        "plus N extra tmpfs mounts.",
        "",
        "| runtime | extra mounts | wall time | exec → workload's first instruction "
        "| ratio to runc (wall / first insn) |",
        "|---|---|---|---|---|",
    ]
    for extra in EXTRA:
        runc_w, runc_f, _ = results[("runc", extra)]
        for name in table:
            walls, firsts, error = results[(name, extra)]
            if error:
                lines.append(f"| {name} | {extra} | fails here: {error} | | |")
                continue
            ratio = (f"{statistics.median(walls) / statistics.median(runc_w):.2f} / "
                     f"{statistics.median(firsts) / statistics.median(runc_f):.2f}"
                     if runc_w else "–")
            lines.append(f"| {name} | {extra} | {fmt(walls)} | {fmt(firsts)} | {ratio} |")
    lines.append("")
    for name in table:
        zero, most = results[(name, EXTRA[0])][1], results[(name, EXTRA[-1])][1]
        if zero and most:
            per = (statistics.median(most) - statistics.median(zero)) / (EXTRA[-1] - EXTRA[0])
            lines.append(f"- {name}: {per * 1000:.0f} µs per extra mount to the workload's "
                         "start.")
    report = "\n".join(lines)
    print(report)
    if args.write:
        sys.path.insert(0, str(HERE))
        from report import replace_block

        replace_block(args.write, "bench_run", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
