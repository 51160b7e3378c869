"""pyinit's images: size, and container start to workload start, in one run.

usage: python bench/bench_images.py [--runs N] [--write docs/benchmarks.md]
(after images/build.sh)

The workload is bench/clock.c (static, mounted read-only at /clock), which
prints CLOCK_REALTIME; the time is taken from just before ``podman run``.
Compared: pyinit as ENTRYPOINT in each variant, ``podman run --init``
(catatonit) and no init at all on the busybox base. Also the drop-in
binary's start-up against ``python -m pyinit`` on the host. ``$PYINIT_IMAGE``
names the images instead of localhost/pyinit, as for images/build.sh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLOCK = Path("/tmp/pyinit-bench/run/clock")
IMAGE = os.environ.get("PYINIT_IMAGE", "localhost/pyinit")


def env() -> dict[str, str]:
    out = dict(os.environ)
    if "CONTAINERS_CONF" not in out and not os.path.exists("/etc/containers/containers.conf"):
        out["CONTAINERS_CONF"] = str(ROOT / "tools" / "containers.conf")
    return out


def first_insn(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.time_ns()
        res = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=60,
                             check=True, stdin=subprocess.DEVNULL)
        out.append((int(res.stdout.split()[0]) - t0) / 1e6)
    return out


def size_mb(image: str) -> float:
    res = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", image],
                         capture_output=True, text=True, env=env(), check=True)
    return int(res.stdout.strip()) / 1e6


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    if not CLOCK.exists():
        CLOCK.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-o", str(CLOCK), str(HERE / "clock.c")],
                       check=True)
    mount = ["-v", f"{CLOCK}:/clock:ro"]
    run = ["podman", "run", "--rm", "--network", "none", *mount]
    cases = {
        "pyinit ENTRYPOINT, debian-slim": [*run, f"{IMAGE}:debian-slim", "/clock"],
        "pyinit ENTRYPOINT, minimal (drop-in)": [*run, f"{IMAGE}:minimal", "/clock"],
        "podman run --init (catatonit), busybox": [*run, "--init",
                                                   "localhost/busybox-base:latest", "/clock"],
        "no init, busybox": [*run, "localhost/busybox-base:latest", "/clock"],
    }
    results = {}
    for name, argv in cases.items():
        print(f"measuring {name} ...", file=sys.stderr)
        results[name] = first_insn(argv, args.runs)
    from bench_start import dropin_command

    dropin, why = dropin_command()  # the image's loader, named: it is not the host's
    if dropin is None:
        raise SystemExit(f"bench_images.py: {why}")
    host = {
        "drop-in binary": [*dropin, "--log-level", "error", "--", str(CLOCK)],
        "python -m pyinit (venv)": [sys.executable, "-m", "pyinit", "--log-level", "error",
                                    "--", str(CLOCK)],
    }
    for name, argv in host.items():
        print(f"measuring {name} ...", file=sys.stderr)
        results[name] = first_insn(argv, args.runs * 3)
    base = statistics.median(results["no init, busybox"])
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; median "
        f"(min–max) in ms, {args.runs} container runs and {args.runs * 3} host runs each.",
        "",
        "| image | size (MB) |",
        "|---|---|",
    ]
    for image in (f"{IMAGE}:debian-slim", f"{IMAGE}:minimal", "localhost/busybox-base:latest"):
        lines.append(f"| `{image}` | {size_mb(image):.1f} |")
    lines += ["", "| `podman run` → workload's first instruction | ms | vs no init |",
              "|---|---|---|"]
    for name in cases:
        ratio = statistics.median(results[name]) / base
        lines.append(f"| {name} | {fmt(results[name])} | {ratio:.2f}× |")
    lines += ["", "| on the host: exec → workload's first instruction | ms |", "|---|---|"]
    for name in host:
        lines.append(f"| {name} | {fmt(results[name])} |")
    report = "\n".join(lines)
    print(report)
    if args.write:
        sys.path.insert(0, str(HERE))
        from report import replace_block

        replace_block(args.write, "bench_images", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
