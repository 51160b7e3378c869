"""Issue 12's targets, all from one run: pyinit against runc, bubblewrap and tini.

usage: python bench/bench_start.py [--runs N] [--write docs/benchmarks.md]

Measured, interleaved round by round so that drift on this noisy 2-core
machine hits every column alike:

  run          ``pyinit run`` and ``runc run`` on the same bundle (``runc spec``
               on a busybox-static root, workload bench/clock.c): exec → the
               workload's first instruction, and wall time
  sandbox      wall time of ``pyinit sandbox -- /bin/true``, of bubblewrap
               doing the same job (the same binds, /proc, /dev, /tmp and
               namespaces), and of bare ``python -I -S -c pass`` from
               pyinit's interpreter
  init         ``pyinit -- date +%s%N`` and ``tini -- …``: exec → first
               instruction
  burst        2000 orphans exit at once under the init as PID 1: drain time
               and the init's CPU time
  signal       SIGUSR1 to the init → received by the workload
  rss          the init's peak RSS while it supervises
  drop-in      the drop-in binary (images/build.sh) against the virtualenv's
               ``pyinit``: exec → first instruction (skipped if not built)

pyinit is installed as users get it (not editable) into a private virtualenv
(``PYINIT_BENCH_VENV``, default /tmp/pyinit-bench/venv; bundles in
``PYINIT_BENCH_WORK``, default /tmp/pyinit-bench/run). Ratios are medians
over medians from this one run; never compare absolute numbers across runs.
The machine's load (``uptime``'s 1-minute average) is recorded before, during
(median over the rounds) and after, since it moves every figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench_run  # noqa: E402

import bench  # noqa: E402

# The drop-in (images/dropin/build.sh, which images/build.sh runs): /opt/pyinit
# of the minimal image, whose ELF interpreter and rpath are /opt/pyinit/lib
# (PYINIT_BENCH_DROPIN: another build). Its sys.path is found from argv[0]
# (pyinit._pth next to it), so it runs from the build directory too.
DROPIN_DIR = Path(os.environ.get("PYINIT_BENCH_DROPIN", ROOT / "build" / "dropin")) \
    / "opt" / "pyinit"
BWRAP_SANDBOX = [  # what `pyinit sandbox` does by default (pyinit/sandbox.py)
    "bwrap", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc",
    "--dev", "/dev", "--tmpfs", "/tmp", "--symlink", "usr/bin", "/bin",
    "--symlink", "usr/sbin", "/sbin", "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
]


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter_ns()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return (time.perf_counter_ns() - t0) / 1e6


def first_insn(argv: list[str]) -> tuple[float, float]:
    """exec → the first line the workload prints (CLOCK_REALTIME ns), and wall time."""
    t0 = time.time_ns()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True,
                         stdin=subprocess.DEVNULL)
    t1 = time.time_ns()
    return (int(res.stdout.split()[0]) - t0) / 1e6, (t1 - t0) / 1e6


def dropin_command() -> tuple[list[str] | None, str]:
    """How to start the drop-in binary on this host, or None and why not.

    Its ELF interpreter is the image's /opt/pyinit/lib/ld-linux-x86-64.so.2,
    which the host lacks unless the build sits at /opt/pyinit: then it runs
    through that loader, named explicitly, with the build's libraries (the
    kernel would do the same through PT_INTERP, so the cost is the same).
    """
    binary = DROPIN_DIR / "pyinit"
    if not binary.is_file():
        return None, f"{binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary} " \
            "is missing (images/dropin/build.sh)"
    loader = DROPIN_DIR / "lib" / "ld-linux-x86-64.so.2"
    argv = [str(binary)]
    if DROPIN_DIR.resolve() != Path("/opt/pyinit").resolve() and loader.is_file():
        argv = [str(loader), "--library-path", str(DROPIN_DIR / "lib"), str(binary)]
    try:
        res = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except OSError as exc:
        return None, f"{binary} does not start here: {exc.strerror}"
    if res.returncode != 0:
        return None, f"{binary} --version exited {res.returncode}: " \
            f"{(res.stderr.strip().splitlines() or [''])[-1]}"
    return argv, ""


def med(values: list[float]) -> float:
    return statistics.median(values)


def fmt(values: list[float], digits: int = 1) -> str:
    if not values:
        return "–"
    return f"{med(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="rounds of the start-up metrics")
    ap.add_argument("--signals", type=int, default=100)
    ap.add_argument("--bursts", type=int, default=5)
    ap.add_argument("--write", type=Path, help="also write the tables into this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_start.py needs root", file=sys.stderr)
        return 2
    bench.ensure_packages()
    bench_run.ensure_tools()
    pyinit = bench.ensure_pyinit()
    python = str(Path(pyinit).parent / "python")
    bundle = bench_run.make_bundle(0, bench_run.build_clock())
    clock = str(bench_run.WORK / "clock")

    def run_argv(runtime: str, i: int) -> list[str]:
        cid = f"bench-{os.getpid()}-{i}"
        if runtime == "runc":
            return ["runc", "run", "--bundle", str(bundle), cid]
        return [pyinit, "run", "--bundle", str(bundle), "--id", cid, "--log-level", "error"]

    r: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        r.setdefault(key, []).append(value)

    def round_run(i: int) -> None:
        for runtime in ("runc", "pyinit"):
            first, total = first_insn(run_argv(runtime, i))
            add(f"run_first_{runtime}", first)
            add(f"run_wall_{runtime}", total)

    def round_sandbox(i: int) -> None:
        add("sandbox_pyinit", wall([pyinit, "sandbox", "--log-level", "error", "--",
                                    "/bin/true"]))
        add("sandbox_bwrap", wall([*BWRAP_SANDBOX, "/bin/true"]))
        add("python_floor", wall([python, "-I", "-S", "-c", "pass"]))

    def round_init(i: int) -> None:
        add("init_first_pyinit", first_insn([pyinit, "--", "date", "+%s%N"])[0])
        add("init_first_tini", first_insn(["tini", "--", "date", "+%s%N"])[0])
        add("init_first_plain", first_insn(["date", "+%s%N"])[0])

    def round_dropin(i: int) -> None:
        assert dropin is not None
        add("dropin_first", first_insn([*dropin, "--log-level", "error", "--", clock])[0])
        add("venv_first", first_insn([pyinit, "--log-level", "error", "--", clock])[0])

    dropin, dropin_missing = dropin_command()
    rounds: list[Callable[[int], None]] = [round_run, round_sandbox, round_init]
    if dropin is not None:
        rounds.append(round_dropin)
    load = {"before": os.getloadavg()[0], "rounds": []}
    for i in range(args.runs):
        print(f"round {i + 1}/{args.runs}", file=sys.stderr)
        load["rounds"].append(os.getloadavg()[0])
        for measure in rounds:
            measure(i)
    for init, prefix in (("tini", ["tini", "--"]), ("pyinit", [pyinit, "--"])):
        print(f"burst, signals and RSS: {init}", file=sys.stderr)
        drain, cpu = bench.burst_with_cpu(prefix, args.bursts, 2000)
        r[f"burst_{init}"], r[f"burst_cpu_{init}"] = drain, cpu
        r[f"signal_{init}"] = bench.signal_latency(prefix, args.signals)
        r[f"rss_{init}"] = bench.rss(prefix, 3)

    report = render(r, args, dropin_missing, load)
    print(report)
    if args.write:
        from report import replace_block

        replace_block(args.write, "bench_start", report)
    return 0


def render(r: dict[str, list[float]], args: argparse.Namespace, dropin_missing: str,
           load: dict[str, Any]) -> str:
    dropin = not dropin_missing
    def ratio(a: str, b: str) -> float:
        return med(r[a]) / med(r[b])

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    run_ratio = ratio("run_first_pyinit", "run_first_runc")
    sandbox_ratio = ratio("sandbox_pyinit", "python_floor")
    init_ratio = ratio("init_first_pyinit", "python_floor")
    burst_ratio = ratio("burst_pyinit", "burst_tini")
    cpu_ratio = ratio("burst_cpu_pyinit", "burst_cpu_tini")
    signal_ratio = ratio("signal_pyinit", "signal_tini")
    rss_mb = med(r["rss_pyinit"]) / 1024
    targets = [
        ("`pyinit run` → first instruction ≤ 1.0 × runc",
         f"{med(r['run_first_pyinit']):.1f} ms = {run_ratio:.2f} × runc's "
         f"{med(r['run_first_runc']):.1f} ms", verdict(run_ratio <= 1.0)),
        ("`pyinit sandbox -- /bin/true` ≤ 3 × bare `python -I -S -c pass`",
         f"{med(r['sandbox_pyinit']):.1f} ms = {sandbox_ratio:.2f} × "
         f"{med(r['python_floor']):.1f} ms (bubblewrap: {med(r['sandbox_bwrap']):.1f} ms)",
         verdict(sandbox_ratio <= 3.0)),
        ("`pyinit -- CMD` → first instruction ≤ 1.5 × bare python",
         f"{med(r['init_first_pyinit']):.1f} ms = {init_ratio:.2f} × "
         f"(tini: {med(r['init_first_tini']):.1f} ms)", verdict(init_ratio <= 1.5)),
        ("drain of a 2000-orphan burst ≤ 1.5 × tini",
         f"{burst_ratio:.2f} × (the init's CPU meanwhile: {cpu_ratio:.2f} ×)",
         verdict(burst_ratio <= 1.5)),
        ("signal-forwarding latency ≤ 2 × tini",
         f"{med(r['signal_pyinit']):.0f} µs = {signal_ratio:.2f} ×", verdict(signal_ratio <= 2)),
        ("peak RSS ≤ 30 MB", f"{rss_mb:.1f} MB", verdict(rss_mb <= 30)),
    ]
    if dropin:
        dropin_ratio = ratio("dropin_first", "venv_first")
        targets.append(("drop-in binary → first instruction ≤ 1.5 × the virtualenv's",
                        f"{med(r['dropin_first']):.1f} ms = {dropin_ratio:.2f} ×",
                        verdict(dropin_ratio <= 1.5)))
    else:
        targets.append(("drop-in binary → first instruction ≤ 1.5 × the virtualenv's",
                        f"not measured: {dropin_missing}", "–"))
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: Linux "
        f"{platform.release()}, {os.cpu_count()} CPUs, load average (1 min) "
        f"{load['before']:.1f} before, {med(load['rounds']):.1f} during the rounds (median), "
        f"{os.getloadavg()[0]:.1f} at the end. Median (min–max) of {args.runs} rounds, "
        f"{args.bursts} bursts, {args.signals} signals, 3 RSS samples.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(f"| {t} | {m} | {v} |" for t, m, v in targets),
        "",
        "| metric | pyinit | anchor | ratio |",
        "|---|---|---|---|",
        f"| `run`: exec → first instruction (ms) | {fmt(r['run_first_pyinit'])} | runc "
        f"{fmt(r['run_first_runc'])} | {run_ratio:.2f}× |",
        f"| `run`: wall time (ms) | {fmt(r['run_wall_pyinit'])} | runc "
        f"{fmt(r['run_wall_runc'])} | {ratio('run_wall_pyinit', 'run_wall_runc'):.2f}× |",
        f"| `sandbox -- /bin/true`: wall time (ms) | {fmt(r['sandbox_pyinit'])} | bwrap "
        f"{fmt(r['sandbox_bwrap'])} | {ratio('sandbox_pyinit', 'sandbox_bwrap'):.1f}× |",
        f"| `sandbox -- /bin/true`: wall time (ms) | {fmt(r['sandbox_pyinit'])} | "
        f"`python -I -S -c pass` {fmt(r['python_floor'])} | {sandbox_ratio:.1f}× |",
        f"| `pyinit -- date`: exec → first instruction (ms) | {fmt(r['init_first_pyinit'])} "
        f"| tini {fmt(r['init_first_tini'])}; no init {fmt(r['init_first_plain'])} | "
        f"{ratio('init_first_pyinit', 'init_first_tini'):.1f}× tini |",
        f"| 2000-orphan burst: drain (ms) | {fmt(r['burst_pyinit'])} | tini "
        f"{fmt(r['burst_tini'])} | {burst_ratio:.2f}× |",
        f"| 2000-orphan burst: the init's CPU (ms) | {fmt(r['burst_cpu_pyinit'])} | tini "
        f"{fmt(r['burst_cpu_tini'])} | {cpu_ratio:.2f}× |",
        f"| SIGUSR1 forwarding latency (µs) | {fmt(r['signal_pyinit'], 0)} | tini "
        f"{fmt(r['signal_tini'], 0)} | {signal_ratio:.2f}× |",
        f"| peak RSS while supervising (kB) | {fmt(r['rss_pyinit'], 0)} | tini "
        f"{fmt(r['rss_tini'], 0)} | {ratio('rss_pyinit', 'rss_tini'):.1f}× |",
    ]
    if dropin:
        lines.append(f"| drop-in binary: exec → first instruction (ms) | "
                     f"{fmt(r['dropin_first'])} | venv {fmt(r['venv_first'])} | "
                     f"{ratio('dropin_first', 'venv_first'):.2f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
